"""taskmesh users service: profiles and read copies of role and active flag."""
