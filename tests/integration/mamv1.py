"""mod_mam's schema 1 (before the message texts were stored once and the
archives numbered, and before rooms' archives were numbered): statements that put a database written by the
current schema back to schema 1 with a few archived messages, so that a
test can start meerkatd on it and check the upgrade. Standard library
only."""

# Two users of DOMAIN; IDs from 2023, before anything the test sends.
ID_ONE = (1700000000000000 + 1) * 256
ID_TWO = (1700000000000000 + 2) * 256
ID_THREE = (1700000000000000 + 3) * 256
ROOM = "lounge@rooms.localhost"


def _xml(frm, to, body):
    return ("<message xmlns=''jabber:client'' from=''%s'' to=''%s'' type=''chat''>"
            "<body>%s</body></message>" % (frm, to, body))


def downgrade(pgsql, a="ann", b="bea", domain="localhost"):
    """The statements, in order. 'old one' (a to b) is in both archives
    under one ID, 'old two' (a to a remote JID) in a's, 'old three' (a to
    b, b's copy only) in b's; 'old room' in ROOM's archive."""
    aj, bj = "%s@%s" % (a, domain), "%s@%s" % (b, domain)
    rows = [
        (a, ID_ONE, bj, "", aj, "'o1'", _xml(aj + "/r", bj, "old one")),
        (b, ID_ONE, aj, "r", aj, "'o1'", _xml(aj + "/r", bj, "old one")),
        (a, ID_TWO, "far@remote.example", "", aj, "NULL",
         _xml(aj + "/r", "far@remote.example", "old two")),
        (b, ID_THREE, aj, "r", aj, "NULL", _xml(aj + "/r", bj, "old three")),
    ]
    out = ["DROP VIEW mam_user_message", "DROP TABLE mam_entry", "DROP TABLE mam_message",
           "DROP TABLE mam_archive"]
    if pgsql:
        out.append("DROP FUNCTION mam_entry_gone()")
    out += [
        "CREATE TABLE mam_user_message (username TEXT NOT NULL, domain TEXT NOT NULL,"
        " id BIGINT NOT NULL, with_bare TEXT NOT NULL, with_resource TEXT NOT NULL,"
        " from_bare TEXT NOT NULL, origin_id TEXT, xml TEXT NOT NULL,"
        " PRIMARY KEY (username, domain, id), FOREIGN KEY (username, domain)"
        " REFERENCES users (username, domain) ON DELETE CASCADE)",
        "CREATE INDEX mam_user_message_with ON mam_user_message"
        " (username, domain, with_bare, id)",
    ]
    for user, i, wb, wr, fb, oid, xml in rows:
        out.append("INSERT INTO mam_user_message VALUES ('%s', '%s', %d, '%s', '%s', '%s', %s,"
                   " '%s')" % (user, domain, i, wb, wr, fb, oid, xml))
    # Rooms: schema 1's table (schema 3 numbered them), with one message
    # from a's nick 'ann' in ROOM.
    out += [
        "DROP VIEW mam_room_message", "DROP TABLE mam_room_entry", "DROP TABLE mam_room",
        "CREATE TABLE mam_room_message (room TEXT NOT NULL, id BIGINT NOT NULL,"
        " with_bare TEXT NOT NULL, with_resource TEXT NOT NULL, from_bare TEXT NOT NULL,"
        " origin_id TEXT, xml TEXT NOT NULL, PRIMARY KEY (room, id))",
        "CREATE INDEX mam_room_message_with ON mam_room_message (room, with_bare, id)",
        "INSERT INTO mam_room_message VALUES ('%s', %d, '%s', 'ann', '%s', NULL, '%s')"
        % (ROOM, ID_ONE, ROOM, aj, _xml(ROOM + "/ann", bj, "old room")),
    ]
    out.append("UPDATE meerkat_schema SET version = 1 WHERE component = 'mod_mam'")
    return out
