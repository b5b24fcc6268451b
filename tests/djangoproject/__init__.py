"""A small real Django project (ORM on SQLite, sessions, auth, the default
middleware, Channels consumers) that the tests run on asgiref_fast. Import it
with tests/ on sys.path; the database file is $DJANGOPROJECT_DB."""
