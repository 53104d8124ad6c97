//! Why the link to NATS failed, one variant per cause the client can tell
//! apart, each with what went wrong and what to do about that cause.

use crate::config::{NatsAuth, NatsConfig};

/// Why the cluster link failed. Each says what went wrong
/// ([`ClusterError::problem`]) and what to do about that cause
/// ([`ClusterError::fix`]); shown whole, the one after the other.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Nothing listens at the address (connection refused).
    NotListening { url: String },
    /// The address cannot be resolved, or does not answer in time.
    Unreachable { url: String, reason: String },
    /// The URL is not one the client can use.
    BadUrl { url: String, reason: String },
    /// The TLS handshake failed.
    Tls {
        url: String,
        reason: String,
        cause: TlsCause,
    },
    /// The server refused the credentials (authorization violation).
    Refused {
        url: String,
        /// The credentials, described without their secret.
        auth: String,
        /// Which settings hold them.
        check: &'static str,
    },
    /// The nkey seed or the credentials file cannot sign in at all.
    Credentials {
        url: String,
        auth: String,
        reason: String,
    },
    /// The server runs without JetStream.
    NoJetStream { url: String },
    /// JetStream runs, but not for this user's account.
    AccountWithoutJetStream { url: String, auth: String },
    /// The server refused an operation on a subject (permissions).
    Forbidden {
        what: String,
        detail: String,
        node: String,
        swarm: String,
        /// This machine is the hub.
        hub: bool,
    },
    /// The hub has not made the streams and consumers yet.
    NotSetUp { what: String },
    /// Any other JetStream failure.
    JetStream(String),
}

/// What a failed TLS handshake says about its cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsCause {
    /// The server's certificate is not trusted (or not for this host).
    Certificate,
    /// The server answered in plain text: it speaks no TLS.
    NotTls,
    Other,
}

impl ClusterError {
    /// What went wrong.
    #[must_use]
    pub fn problem(&self) -> String {
        match self {
            Self::NotListening { url } => format!("nothing listens at {url} (connection refused)"),
            Self::Unreachable { url, reason } => format!("cannot reach NATS at {url}: {reason}"),
            Self::BadUrl { url, reason } => format!("ACP_NATS_URL {url} is not usable: {reason}"),
            Self::Tls { url, reason, .. } => format!("TLS with NATS at {url} failed: {reason}"),
            Self::Refused { url, auth, .. } if auth == "no credentials" => format!(
                "NATS at {url} refused a connection without credentials: authorization violation"
            ),
            Self::Refused { url, auth, .. } => {
                format!("NATS at {url} refused {auth}: authorization violation")
            }
            Self::Credentials { url, auth, reason } => {
                format!("cannot sign in to NATS at {url} with {auth}: {reason}")
            }
            Self::NoJetStream { url } => format!("NATS at {url} runs without JetStream"),
            Self::AccountWithoutJetStream { url, auth } => format!(
                "NATS at {url} runs JetStream, but not for the account this machine signs in to \
                 (with {auth})"
            ),
            Self::Forbidden { what, detail, .. } => format!("NATS refused {what} ({detail})"),
            Self::NotSetUp { what } => format!("JetStream has no {what} yet"),
            Self::JetStream(e) => format!("NATS JetStream: {e}"),
        }
    }

    /// What to do about it.
    #[must_use]
    pub fn fix(&self) -> String {
        match self {
            Self::NotListening { .. } => "start nats-server there, with JetStream (`nats-server \
                 -js`, or `jetstream {}` in its config), or correct ACP_NATS_URL in .env"
                .into(),
            Self::Unreachable { .. } => "check the host and port in ACP_NATS_URL in .env, and \
                 that this machine can reach them (a firewall, the VPN)"
                .into(),
            Self::BadUrl { .. } => {
                "set ACP_NATS_URL in .env to nats://HOST:PORT (or tls://HOST:PORT)".into()
            }
            Self::Tls { cause, .. } => match cause {
                TlsCause::Certificate => "trust the server's certificate: set ACP_NATS_TLS_CA \
                     in .env to the CA file that signed it (the ca_file of nats-server's tls \
                     block), and use a host name in ACP_NATS_URL that the certificate names"
                    .into(),
                TlsCause::NotTls => "the server speaks no TLS: give nats-server a tls block \
                     (cert_file, key_file), or drop ACP_NATS_TLS and use nats:// rather than \
                     tls:// in ACP_NATS_URL"
                    .into(),
                TlsCause::Other => "check nats-server's tls block against ACP_NATS_TLS and \
                     ACP_NATS_TLS_CA in .env"
                    .into(),
            },
            Self::Refused { check, .. } => (*check).to_owned(),
            Self::Credentials { .. } => "ACP_NATS_NKEY must hold an nkey seed (SU...) and \
                 ACP_NATS_CREDS a readable .creds file as `nsc` writes it: fix the one in .env"
                .into(),
            Self::NoJetStream { .. } => "restart nats-server with JetStream: `nats-server -js`, \
                 or `jetstream {}` in its config file (Debian's own file has none)"
                .into(),
            Self::AccountWithoutJetStream { .. } => "enable JetStream for that account in \
                 nats-server's config (`jetstream: enabled` in the account's block), then \
                 restart nats-server"
                .into(),
            Self::Forbidden {
                node,
                swarm,
                hub: true,
                ..
            } => format!(
                "this machine's NATS user may not use the subjects the hub {node} needs: give it \
                 the hub's permissions in docs/several-machines.md (publish and \
                 subscribe $JS.>, acp.{swarm}.>, $KV.acp_{swarm}_presence.> and \
                 _INBOX_{node}.>)"
            ),
            Self::Forbidden { node, swarm, .. } => format!(
                "this machine's NATS user may not use the subjects of node {node}: give it the \
                 permissions block in docs/several-machines.md (a node reads only \
                 acp.{swarm}.node.{node}), or start it with its own --node"
            ),
            Self::NotSetUp { .. } => "start the hub's acp run first: it creates the streams and \
                 each node's consumer"
                .into(),
            Self::JetStream(_) => {
                "see nats-server's log for why, then run `acp doctor` again".into()
            }
        }
    }
}

impl std::fmt::Display for ClusterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.problem(), self.fix())
    }
}

/// Which settings to check when the server refuses these credentials.
fn check_credentials(auth: &NatsAuth) -> &'static str {
    match auth {
        NatsAuth::None => {
            "the server wants credentials: set ACP_NATS_USER and ACP_NATS_PASSWORD (or \
             ACP_NATS_TOKEN, ACP_NATS_CREDS, ACP_NATS_NKEY) in .env, as nats-server's \
             authorization block has them"
        }
        NatsAuth::UserPassword { .. } => {
            "check ACP_NATS_USER and ACP_NATS_PASSWORD in .env against the user in \
             nats-server's authorization block"
        }
        NatsAuth::Token(_) => {
            "check ACP_NATS_TOKEN in .env against the token in nats-server's authorization block"
        }
        NatsAuth::CredsFile(_) => {
            "the server knows no user of this .creds file: put the one made for this machine's \
             user in ACP_NATS_CREDS"
        }
        NatsAuth::NKey(_) => {
            "the server knows no user with this nkey: put the seed of a user in nats-server's \
             config in ACP_NATS_NKEY"
        }
    }
}

/// Why connecting failed, by the client's error kind and, for an I/O
/// error, what the socket or the TLS layer said.
pub(crate) fn connect_error(e: &async_nats::ConnectError, nats: &NatsConfig) -> ClusterError {
    use async_nats::ConnectErrorKind as Kind;
    let url = nats.url.clone();
    let reason = e.to_string();
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
    let rustls = io
        .and_then(std::io::Error::get_ref)
        .and_then(|inner| inner.downcast_ref::<async_nats::rustls::Error>());
    match e.kind() {
        Kind::AuthorizationViolation => ClusterError::Refused {
            url,
            auth: nats.auth.describe(),
            check: check_credentials(&nats.auth),
        },
        Kind::Authentication => ClusterError::Credentials {
            url,
            auth: nats.auth.describe(),
            reason,
        },
        Kind::Tls => ClusterError::Tls {
            url,
            reason,
            cause: TlsCause::Other,
        },
        _ if rustls.is_some() => ClusterError::Tls {
            url,
            reason,
            cause: match rustls {
                Some(async_nats::rustls::Error::InvalidCertificate(_)) => TlsCause::Certificate,
                Some(async_nats::rustls::Error::InvalidMessage(_)) => TlsCause::NotTls,
                _ => TlsCause::Other,
            },
        },
        Kind::Io if io.is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) => {
            ClusterError::NotListening { url }
        }
        Kind::ServerParse => ClusterError::BadUrl { url, reason },
        _ => ClusterError::Unreachable { url, reason },
    }
}
