"""`python -m taskmesh_analytics` starts the analytics service."""

from taskmesh_analytics.main import run

if __name__ == "__main__":
    run()
