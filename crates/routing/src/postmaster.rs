//! `postmaster` (RFC 5321 §4.5.1): `postmaster` and `postmaster@` any local
//! Internet domain always reach someone. A directory entry with that address
//! or name wins; otherwise the address is an alias of the configuration's
//! `postmaster`, else of the server's first administrator that names exactly
//! one directory entry, else the mail file `mail/postmaster` on this server.

use directory::EntryRef;

use crate::address::Address;
use crate::resolve::{Context, Route};

/// The mail file postmaster mail goes to when nobody is named for it.
pub const POSTMASTER_MAIL_FILE: &str = "mail/postmaster";

/// Is `address` this server's postmaster (any case, bare or at a local
/// Internet domain or the local Notes domain)?
pub fn is_postmaster(ctx: Context<'_>, address: &Address) -> bool {
    let Context { dir, server, .. } = ctx;
    match address {
        Address::Internet { local, domain } => {
            local.eq_ignore_ascii_case("postmaster") && dir.is_local_internet_domain(server, domain)
        }
        Address::Notes { name, domain } => {
            name.trim().eq_ignore_ascii_case("postmaster")
                && domain
                    .as_deref()
                    .is_none_or(|d| d.trim().eq_ignore_ascii_case(&dir.domain.name))
        }
    }
}

/// The entry (or, without one, the route) postmaster mail goes to; `None`
/// when `address` is not the postmaster or a directory entry has it.
pub(crate) fn find(ctx: Context<'_>, address: &Address) -> Option<Result<EntryRef, Route>> {
    if !is_postmaster(ctx, address) {
        return None;
    }
    let dir = ctx.dir;
    let claimed = match address {
        Address::Internet { local, domain } => {
            !dir.by_internet_address(&format!("{local}@{domain}"))
                .is_empty()
                || !dir.by_name(local).is_empty()
        }
        Address::Notes { name, .. } => !dir.by_name(name).is_empty(),
    };
    if claimed {
        return None;
    }
    Some(postmaster_target(ctx))
}

/// Who receives postmaster mail on this server.
pub fn postmaster_target(ctx: Context<'_>) -> Result<EntryRef, Route> {
    let Context {
        dir,
        config,
        server,
        ..
    } = ctx;
    let one = |name: &str| {
        let mut hits = if name.contains('@') {
            dir.by_internet_address(name)
        } else {
            dir.by_name(name)
        };
        hits.dedup();
        match hits.as_slice() {
            [only] => Some(*only),
            _ => None,
        }
    };
    let configured = config.postmaster.trim();
    if !configured.is_empty()
        && let Some(entry) = one(configured)
    {
        return Ok(entry);
    }
    if let Some(entry) = server
        .administrators
        .iter()
        .find_map(|a| one(&a.to_string()))
    {
        return Ok(entry);
    }
    Err(Route::Local {
        mail_file: POSTMASTER_MAIL_FILE.to_owned(),
        owner: "Postmaster".to_owned(),
        quota: None,
    })
}
