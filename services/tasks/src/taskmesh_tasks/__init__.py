"""taskmesh tasks service: tasks and their attachments."""
