-- 0006: suspended accounts (abuse controls). A suspended account still authenticates, but
-- every MAIL FROM gets 550 5.7.1 (with [suspension] contact), its open sessions end at
-- their next command, and its queued messages are held until an admin releases or deletes
-- them. Set by `truefrom account suspend`, by a server's automatic triggers (the reason
-- names the trigger and its evidence) or with SQL; NULL suspended_at: not suspended. The
-- change is announced like every change to accounts (0002's trigger), so running servers
-- apply it within a second.
ALTER TABLE accounts ADD COLUMN suspended_at timestamptz;
ALTER TABLE accounts ADD COLUMN suspended_reason text;
