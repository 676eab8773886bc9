-- A notification hook is one of three kinds: `webhook` (signed JSON to a
-- URL, what every hook was before), `slack` (a message in the shape of
-- Slack's incoming webhooks, POSTed to `url`) or `email` (a message through
-- the controller's SMTP server to `emails`, comma-separated). Hooks of the
-- two new kinds have no signing secret: `secret_sealed` is empty, and
-- `url` is empty for e-mail.
ALTER TABLE notification_hooks ADD COLUMN kind TEXT NOT NULL DEFAULT 'webhook';
ALTER TABLE notification_hooks ADD COLUMN emails TEXT NOT NULL DEFAULT '';
