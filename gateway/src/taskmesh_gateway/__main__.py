"""`python -m taskmesh_gateway` starts the gateway."""

from taskmesh_gateway.main import run

if __name__ == "__main__":
    run()
