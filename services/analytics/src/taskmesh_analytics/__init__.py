"""taskmesh analytics service: product and API figures."""
