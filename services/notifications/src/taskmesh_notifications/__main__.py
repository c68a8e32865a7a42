"""`python -m taskmesh_notifications` starts the notifications service."""

from taskmesh_notifications.main import run

if __name__ == "__main__":
    run()
