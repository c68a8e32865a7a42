"""`python -m taskmesh_users` starts the users service."""

from taskmesh_users.main import run

if __name__ == "__main__":
    run()
