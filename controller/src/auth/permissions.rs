//! What each role may do: the one table of permissions.
//!
//! Every operation under `/api/v1` declares the permission it needs in its
//! `#[utoipa::path]`, as `extensions(("x-permission" = json!("site.deploy")))`,
//! so the OpenAPI document shows it; `auth::access` reads the declarations
//! from that document and checks them for every request before its handler
//! runs. An operation that declares none is refused (and
//! `every_operation_declares_a_known_permission` fails).

use super::Scope;
use crate::db::Role;

/// What an operation needs, on the resource its path names (a site, a
/// build of a site, or the installation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Anyone, signed in or not (this API's own document).
    Public,
    /// Read a site: its builds, logs, deploys and settings (no secret).
    SiteRead,
    /// Trigger, cancel and retry a site's builds.
    SiteBuild,
    /// Deploy, publish and roll back, lock and unlock a site.
    SiteDeploy,
    /// Change a site: settings, variables, hooks, schedules, protection.
    SiteAdmin,
    /// See a team's members and their roles.
    TeamRead,
    /// Add and remove a team's members, change their roles and the team's
    /// limits, make the team's tokens.
    TeamMembers,
    /// The installation itself: its tokens, runners, garbage collection,
    /// webhook deliveries and GitHub installations. Only the admin token.
    InstallationAdmin,
}

impl Permission {
    pub const ALL: [Permission; 8] = [
        Permission::Public,
        Permission::SiteRead,
        Permission::SiteBuild,
        Permission::SiteDeploy,
        Permission::SiteAdmin,
        Permission::TeamRead,
        Permission::TeamMembers,
        Permission::InstallationAdmin,
    ];

    /// The name an operation declares (`x-permission`).
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Public => "public",
            Permission::SiteRead => "site.read",
            Permission::SiteBuild => "site.build",
            Permission::SiteDeploy => "site.deploy",
            Permission::SiteAdmin => "site.admin",
            Permission::TeamRead => "team.read",
            Permission::TeamMembers => "team.members",
            Permission::InstallationAdmin => "installation.admin",
        }
    }

    pub fn parse(name: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The role table: the weakest role that holds this permission (roles
    /// above it hold it too), `None` when no team role does.
    pub fn least_role(self) -> Option<Role> {
        match self {
            Permission::Public | Permission::SiteRead | Permission::TeamRead => Some(Role::Viewer),
            Permission::SiteBuild | Permission::SiteDeploy => Some(Role::Developer),
            Permission::SiteAdmin => Some(Role::Admin),
            Permission::TeamMembers => Some(Role::Owner),
            Permission::InstallationAdmin => None,
        }
    }

    /// The API token scope that allows it; a token may do no more than its
    /// scopes and, if it is a member's, that member's role.
    pub fn scope(self) -> Option<Scope> {
        match self {
            Permission::Public => None,
            Permission::SiteRead | Permission::TeamRead => Some(Scope::Read),
            Permission::SiteBuild => Some(Scope::Builds),
            Permission::SiteDeploy => Some(Scope::Deploys),
            Permission::SiteAdmin => Some(Scope::Sites),
            Permission::TeamMembers | Permission::InstallationAdmin => Some(Scope::Admin),
        }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a member with `role` holds `permission`.
pub fn role_grants(role: Role, permission: Permission) -> bool {
    // Roles are ordered strongest first.
    permission.least_role().is_some_and(|least| role <= least)
}

/// Whether a member with `role` may hold a token with `scope`: a token
/// carries no scope wider than its member's role.
pub fn scope_fits_role(scope: Scope, role: Role) -> bool {
    let unlocks = match scope {
        Scope::Read => Permission::SiteRead,
        Scope::Builds => Permission::SiteBuild,
        Scope::Deploys => Permission::SiteDeploy,
        Scope::Sites => Permission::SiteAdmin,
        Scope::Admin => Permission::TeamMembers,
    };
    role_grants(role, unlocks)
}

/// The name of the OpenAPI extension an operation declares its permission in.
pub const PERMISSION_EXTENSION: &str = "x-permission";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_holds_what_the_issue_gives_it_and_no_role_is_installation_admin() {
        use Permission::*;
        let held = |role: Role| -> Vec<Permission> {
            Permission::ALL
                .into_iter()
                .filter(|p| role_grants(role, *p))
                .collect()
        };
        assert_eq!(
            held(Role::Owner),
            [
                Public,
                SiteRead,
                SiteBuild,
                SiteDeploy,
                SiteAdmin,
                TeamRead,
                TeamMembers
            ]
        );
        assert_eq!(
            held(Role::Admin),
            [Public, SiteRead, SiteBuild, SiteDeploy, SiteAdmin, TeamRead]
        );
        assert_eq!(
            held(Role::Developer),
            [Public, SiteRead, SiteBuild, SiteDeploy, TeamRead]
        );
        assert_eq!(held(Role::Viewer), [Public, SiteRead, TeamRead]);
        assert!(scope_fits_role(Scope::Deploys, Role::Developer));
        assert!(!scope_fits_role(Scope::Sites, Role::Developer));
        assert!(!scope_fits_role(Scope::Admin, Role::Admin));
        assert!(scope_fits_role(Scope::Admin, Role::Owner));
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
    }
}
