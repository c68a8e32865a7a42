"""`python -m taskmesh_tasks` starts the tasks service."""

from taskmesh_tasks.main import run

if __name__ == "__main__":
    run()
