"""`python -m taskmesh_auth` starts the auth service."""

from taskmesh_auth.main import run

if __name__ == "__main__":
    run()
