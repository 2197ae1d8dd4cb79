-- Test rows written for this corpus, in the shape Mail-in-a-Box's
-- management daemon stores them (see SOURCE.md). Passwords are fake.
INSERT INTO users (email, password, privileges) VALUES
  ('me@example.com', '{BLF-CRYPT}not-a-real-hash', 'admin'),
  ('alice@example.com', '{BLF-CRYPT}not-a-real-hash', ''),
  ('bob@second.example', '{BLF-CRYPT}not-a-real-hash', ''),
  ('user@xn--bcher-kva.example', '{BLF-CRYPT}not-a-real-hash', ''),
  -- Not something the control panel stores (it lower-cases addresses):
  -- a row typed in by hand with sqlite3, to exercise LIKE's case
  -- insensitivity.
  ('Carol@Mixed-Case.Example', '{BLF-CRYPT}not-a-real-hash', '');
INSERT INTO aliases (source, destination, permitted_senders) VALUES
  ('info@alias-only.example', 'me@example.com', NULL),
  ('@catchall.example', 'me@example.com', NULL),
  ('@aliasdomain.example', '@example.com', NULL),
  ('team@example.com', 'me@example.com,alice@example.com', NULL),
  ('sender-only@sender-only.example', '', 'me@example.com');
INSERT INTO auto_aliases (source, destination, permitted_senders) VALUES
  ('postmaster@box.example.com', 'me@example.com', NULL),
  ('admin@box.example.com', 'me@example.com', NULL),
  ('abuse@box.example.com', 'me@example.com', NULL),
  ('postmaster@example.com', 'me@example.com', NULL),
  ('admin@example.com', 'me@example.com', NULL),
  ('abuse@example.com', 'me@example.com', NULL),
  ('postmaster@second.example', 'me@example.com', NULL),
  ('abuse@second.example', 'me@example.com', NULL);
