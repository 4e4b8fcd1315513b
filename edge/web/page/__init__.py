"""The installer's web page: logins (password, session cookie, CSRF), live updates, the static files."""
