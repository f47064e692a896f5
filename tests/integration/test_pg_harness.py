"""The private PostgreSQL of the tests (scripts/bglib/pgserver.py, issue
18): initdb into the test's directory, a free loopback port, the reference
table of by-framework's PostgreSQL history backend, a query, a stop and a
start again on the same port (an outage), nothing left running."""

import os

from bglib import proc


def test_a_private_postgres_starts_answers_and_stops_by_pid(h):
    pg = h.start_postgres()
    assert pg.port != 5432 and pg.alive()
    pg.create_reference_table()
    pg.query("INSERT INTO gateway_session_messages (session_id, role, "
             "content, metadata) VALUES ('s-1', 'user', 'hello', "
             "'{\"message_id\": \"msg-1\"}')")
    rows = pg.query("SELECT session_id, role, content, "
                    "metadata->>'message_id' FROM gateway_session_messages")
    assert rows == [["s-1", "user", "hello", "msg-1"]]
    idx = pg.query("SELECT indexdef FROM pg_indexes WHERE tablename = "
                   "'gateway_session_messages' AND indexname LIKE '%created%'")
    assert "session_id, created_at DESC, id DESC" in idx[0][0], idx
    pid, port = pg.pid, pg.port
    pg.stop()
    assert not proc.pid_alive(pid)
    pg.start()  # the same data, the same port
    assert pg.port == port
    assert pg.query("SELECT count(*) FROM gateway_session_messages") == \
        [["1"]]
    pg.stop()
    assert not os.path.exists(os.path.join(pg.data, "postmaster.pid"))
