"""taskmesh notifications service: in-app notifications, email delivery and due-date reminders."""
