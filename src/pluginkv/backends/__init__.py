"""The backends: the only code that talks to a database, behind ``base.Backend``.

========================  ==================================================================
``base``                  the backend contract
``sqlite``                the embedded default: one SQLite file in WAL mode
``postgres``              PostgreSQL, over psycopg 3 with a connection pool
``memory``                in-process dicts: real semantics, nothing on disk
``read_only``             any backend with its writes refused
``full_disk``             what a SQLite store does when its disk fills up
``migrations``            named, recorded schema migrations shared by the SQL backends
``change_log``            the change log in SQL: its statements and the logging of deletes
``sql_templates``         the SQL both SQL backends run word for word, rendered per dialect
``sql_rows``              SQL rows as the API's values (metadata text back to a dict)
``driver_errors``         the one way a backend turns its driver's errors into pluginkv's
``sqlite_statements``     SQLite's statements: the shared ones rendered, and its own
``sqlite_turns``          writers of one SQLite file in several processes taking turns (flock)
``sqlite_watch``          how SQLite learns of other processes' commits (data_version)
``postgres_statements``   PostgreSQL's own statements
``postgres_connections``  PostgreSQL connections as the backend opens them
``postgres_listen``       how PostgreSQL stores learn of other replicas' commits (LISTEN)
========================  ==================================================================
"""
