-- What a site's builds may reach over the network. `public` (the default)
-- is the public internet only: runners refuse their host, private networks
-- and link-local addresses. `off` is no network at all. `private_hosts`
-- lists, one per line, the private addresses, CIDR blocks or host names a
-- site's builds may reach all the same (a package mirror).

ALTER TABLE site_build_settings ADD COLUMN network TEXT NOT NULL DEFAULT 'public';
ALTER TABLE site_build_settings ADD COLUMN private_hosts TEXT NOT NULL DEFAULT '';
