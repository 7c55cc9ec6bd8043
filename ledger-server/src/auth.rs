//! Bearer tokens and roles: which principal may call which method.
//!
//! With no tokens configured every call is allowed and recorded as
//! `anonymous` (only loopback serving allows that, see `config`). With
//! tokens, each call to Ledger, Reports, Admin or Audit must carry `authorization:
//! Bearer <token>`; a missing or unknown token is UNAUTHENTICATED, a role
//! without the right PERMISSION_DENIED. Health and reflection stay open.
//! Tokens are looked up by their SHA-256, so no comparison of the secret
//! itself runs in time that depends on it.

use crate::config::{Role, TokenConfig};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use tonic::{Request, Status};

/// The principal of a call when no tokens are configured.
pub const ANONYMOUS: &str = "anonymous";

/// Who is calling: the token's name and role. Put into the request's
/// extensions by [`Auth::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name (`anonymous` without tokens).
    pub name: String,
    /// Its role (everything without tokens).
    pub role: Role,
}

/// What a method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A Ledger command.
    Command,
    /// A Ledger query.
    Query,
    /// The Audit service.
    Audit,
    /// The Reports service.
    Report,
    /// The Admin service.
    Admin,
}

impl Access {
    fn allowed(self, role: Role) -> bool {
        match role {
            Role::Admin => true,
            Role::Writer => matches!(self, Access::Command | Access::Query),
            Role::Reader => matches!(self, Access::Query | Access::Report),
            Role::Auditor => matches!(self, Access::Audit | Access::Query | Access::Report),
        }
    }
}

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    by_hash: Arc<HashMap<[u8; 32], (String, Role)>>,
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    /// From the config file's tokens.
    pub fn new(tokens: &[TokenConfig]) -> Auth {
        Auth {
            by_hash: Arc::new(
                tokens
                    .iter()
                    .map(|token| (hash(&token.token), (token.name.clone(), token.role)))
                    .collect(),
            ),
        }
    }

    /// True when calls need a token.
    pub fn enabled(&self) -> bool {
        !self.by_hash.is_empty()
    }

    /// Checks a call to a service that needs at least `access`, and records
    /// the caller in the request. (An interceptor sees the service, not the
    /// method: the Ledger's commands check [`Access::Command`] again with
    /// [`require`].)
    pub fn check(&self, mut request: Request<()>, access: Access) -> Result<Request<()>, Status> {
        if !self.enabled() {
            request.extensions_mut().insert(Caller {
                name: ANONYMOUS.to_owned(),
                role: Role::Admin,
            });
            return Ok(request);
        }
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("this call needs `authorization: Bearer <token>`")
            })?;
        let (name, role) = self
            .by_hash
            .get(&hash(token))
            .ok_or_else(|| Status::unauthenticated("unknown bearer token"))?;
        let caller = Caller {
            name: name.clone(),
            role: *role,
        };
        allow(&caller, access)?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

fn allow(caller: &Caller, access: Access) -> Result<(), Status> {
    if access.allowed(caller.role) {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "token `{}` has the {:?} role, which may not call this ({access:?})",
            caller.name, caller.role
        )))
    }
}

/// Checks that a request's caller (recorded by [`Auth::check`]) may do
/// `access`.
pub fn require<T>(request: &Request<T>, access: Access) -> Result<(), Status> {
    match request.extensions().get::<Caller>() {
        Some(caller) => allow(caller, access),
        None => Err(Status::unauthenticated("the call was not checked")),
    }
}

/// The principal a request was checked as (`anonymous` if none).
pub fn principal<T>(request: &Request<T>) -> String {
    request
        .extensions()
        .get::<Caller>()
        .map_or_else(|| ANONYMOUS.to_owned(), |caller| caller.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_reaches_what_it_should() {
        let cases = [
            (Role::Writer, [true, true, false, false, false]),
            (Role::Reader, [false, true, false, false, true]),
            (Role::Auditor, [false, true, true, false, true]),
            (Role::Admin, [true, true, true, true, true]),
        ];
        for (role, expected) in cases {
            let accesses = [
                Access::Command,
                Access::Query,
                Access::Audit,
                Access::Admin,
                Access::Report,
            ];
            let got = accesses.map(|access| access.allowed(role));
            assert_eq!(got, expected, "{role:?}");
        }
    }
}
