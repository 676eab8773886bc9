-- A site made only for direct deploys (`jamstack deploy`) has no repository
-- until one is connected: repo_url becomes nullable.
--
-- SQLite's ALTER TABLE cannot drop a NOT NULL constraint, and making the
-- table again needs foreign keys off, which cannot be switched inside the
-- transaction a migration runs in (dropping `sites` with them on would
-- delete, through ON DELETE CASCADE, the rows that name it). Dropping a
-- NOT NULL constraint changes nothing stored, so the table's definition is
-- edited in place, as SQLite's documentation describes for this case
-- ("Making Other Kinds Of Table Schema Changes"): RESET reloads this
-- connection's schema; the table made and dropped after it changes the
-- schema version, so every other connection reloads it too.
PRAGMA writable_schema = ON;
UPDATE sqlite_master
   SET sql = replace(sql, 'repo_url            TEXT    NOT NULL,', 'repo_url            TEXT,')
 WHERE type = 'table' AND name = 'sites';
PRAGMA writable_schema = RESET;
CREATE TABLE sites_schema_edited (unused INTEGER);
DROP TABLE sites_schema_edited;
