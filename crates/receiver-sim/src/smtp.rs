//! The SMTP receiver: RFC 5321 with STARTTLS (RFC 3207) and AUTH PLAIN/LOGIN (RFC 4954),
//! on the `mailin` session state machine, with tokio and tokio-rustls for the I/O.
//!
//! Design constraints:
//! - As a submission server that requires TLS (Postfix `smtpd_tls_auth_only` with
//!   `smtpd_tls_security_level = encrypt`): EHLO before STARTTLS offers STARTTLS and no AUTH;
//!   AUTH, MAIL, RCPT or DATA before STARTTLS is answered `530 5.7.0 Must issue a STARTTLS
//!   command first` (RFC 3207 §4); after STARTTLS the session starts over (RFC 3207 §4.2)
//!   and EHLO offers `AUTH PLAIN LOGIN`; MAIL before AUTH is `530 5.7.0 Authentication
//!   required` (RFC 4954 §6); wrong credentials are 535. Bytes pipelined after STARTTLS,
//!   before the handshake, close the connection (the STARTTLS command-injection attack).
//! - `mailin` does the command parsing, the state machine, SASL decoding and the DATA
//!   dot-unstuffing; this module adds the TLS-first rules above, which `mailin` answers
//!   with a bare 503.
//! - Each accepted message is a delivery of kind Email: envelope in `headers`
//!   (`mail-from`, `rcpt-to`), the raw message as a JSON string, `id` the `Message-ID`
//!   header, `duplicate` when that Message-ID was delivered before. Refused AUTH and the
//!   TLS-first refusals are rejections (a correct sender never causes one).
//! - Lines are bounded (RFC 5321 §4.5.3.1: 512 octets for a command, 1000 for a text line;
//!   this server allows 4096) and a message at most 10 MB.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mailin::{Action, AuthMechanism, Handler, Response, SessionBuilder};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use crate::record::Kind;
use crate::server::Shared;
use crate::wire::secret_eq;

const MAX_LINE: usize = 4096;
const MAX_MESSAGE: usize = 10 * 1024 * 1024;
const IDLE: Duration = Duration::from_secs(60);
const PATH: &str = "smtp";

/// What the loop and the handler both know about a connection.
#[derive(Default)]
struct Conn {
    authenticated: bool,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
    too_big: bool,
}

struct Mail {
    shared: Arc<Shared>,
    conn: Arc<Mutex<Conn>>,
}

impl Mail {
    fn conn(&self) -> std::sync::MutexGuard<'_, Conn> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn login(&mut self, authz: &str, user: &str, password: &str, mech: &str) -> Response {
        let cfg = &self.shared.cfg;
        let ok = (authz.is_empty() || authz == user)
            && secret_eq(user, &cfg.smtp_username)
            && secret_eq(password, &cfg.smtp_password);
        if ok {
            self.conn().authenticated = true;
            mailin::response::AUTH_OK
        } else {
            self.shared.records().reject(
                Kind::Email,
                PATH,
                535,
                format!("AUTH {mech} with wrong credentials for user {user:?}"),
            );
            mailin::response::INVALID_CREDENTIALS
        }
    }
}

impl Handler for Mail {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        let mut c = self.conn();
        if !c.authenticated {
            return mailin::response::AUTHENTICATION_REQUIRED;
        }
        c.from = from.to_string();
        c.to.clear();
        mailin::response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        self.conn().to.push(to.to_string());
        mailin::response::OK
    }

    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        let mut c = self.conn();
        c.data.clear();
        c.too_big = false;
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut c = self.conn();
        if c.data.len() + buf.len() > MAX_MESSAGE {
            c.too_big = true;
        } else {
            c.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mut c = self.conn();
        if c.too_big {
            return mailin::response::NO_STORAGE;
        }
        let raw = String::from_utf8_lossy(&c.data).into_owned();
        let id = message_id(&raw);
        let mut headers = vec![("mail-from".to_string(), c.from.clone())];
        headers.extend(c.to.iter().map(|t| ("rcpt-to".to_string(), t.clone())));
        c.data.clear();
        drop(c);
        let mut r = self.shared.records();
        let duplicate = id.as_ref().is_some_and(|i| !r.email_ids.insert(i.clone()));
        r.deliver(
            Kind::Email,
            PATH,
            id,
            headers,
            Value::String(raw),
            duplicate,
        );
        mailin::response::OK
    }

    fn auth_plain(&mut self, authz: &str, user: &str, password: &str) -> Response {
        self.login(authz, user, password, "PLAIN")
    }

    fn auth_login(&mut self, user: &str, password: &str) -> Response {
        self.login("", user, password, "LOGIN")
    }
}

/// The `Message-ID` header's value (unfolded, trimmed), from the header section.
pub fn message_id(raw: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next().unwrap_or("");
    let mut lines = head.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.eq_ignore_ascii_case("message-id") {
            continue;
        }
        let mut v = value.trim().to_string();
        while let Some(next) = lines.peek().filter(|l| l.starts_with([' ', '\t'])) {
            v.push_str(next.trim());
            lines.next();
        }
        return Some(v).filter(|v| !v.is_empty());
    }
    None
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut builder = SessionBuilder::new("receiver-sim.localhost");
    builder
        .enable_start_tls()
        .enable_auth(AuthMechanism::Plain)
        .enable_auth(AuthMechanism::Login);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            res = listener.accept() => {
                let Ok((tcp, peer)) = res else { continue };
                let (acceptor, shared, builder) = (acceptor.clone(), shared.clone(), builder.clone());
                let mut sd = shutdown.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = session(tcp, peer, acceptor, shared, builder) => {}
                        _ = sd.changed() => {}
                    }
                });
            }
        }
    }
}

/// How a run of the command loop ended.
enum End {
    Closed,
    StartTls,
}

async fn session(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
    builder: SessionBuilder,
) -> io::Result<()> {
    let conn = Arc::new(Mutex::new(Conn::default()));
    let mail = Mail {
        shared: shared.clone(),
        conn: conn.clone(),
    };
    let mut s = builder.build(peer.ip(), mail);
    let mut plain = BufReader::new(tcp);
    plain.get_mut().write_all(&s.greeting().buffer()?).await?;
    let st = Loop {
        shared: &shared,
        conn: &conn,
    };
    match st.run(&mut plain, &mut s, false).await? {
        End::Closed => return Ok(()),
        End::StartTls => {}
    }
    if !plain.buffer().is_empty() {
        // Commands pipelined before the handshake would be taken as if sent under TLS.
        return Ok(());
    }
    let tls = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(plain.into_inner()))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake"))??;
    s.tls_active();
    *conn.lock().unwrap_or_else(PoisonError::into_inner) = Conn::default();
    let mut tls = BufReader::new(tls);
    st.run(&mut tls, &mut s, true).await?;
    Ok(())
}

struct Loop<'a> {
    shared: &'a Shared,
    conn: &'a Mutex<Conn>,
}

impl Loop<'_> {
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: &mut BufReader<S>,
        s: &mut mailin::Session<Mail>,
        tls: bool,
    ) -> io::Result<End> {
        // Whether the client is sending message text or an AUTH continuation, where lines
        // are not commands.
        let (mut in_data, mut in_auth) = (false, false);
        let mut line = Vec::with_capacity(256);
        loop {
            line.clear();
            let n = tokio::time::timeout(
                IDLE,
                (&mut *io)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut line),
            )
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "idle"))??;
            if n == 0 {
                return Ok(End::Closed);
            }
            if !line.ends_with(b"\n") {
                io.get_mut()
                    .write_all(b"500 5.5.2 Line too long\r\n")
                    .await?;
                return Ok(End::Closed);
            }
            let refusal = if in_data || in_auth {
                None
            } else {
                self.refusal(&line, tls)
            };
            let reply = match refusal {
                Some(r) => r,
                None => {
                    let res = s.process(&line);
                    if in_data && res.code != 0 {
                        in_data = false;
                    }
                    in_data |= res.code == 354;
                    in_auth = res.code == 334;
                    match res.action {
                        Action::NoReply => continue,
                        Action::UpgradeTls => {
                            io.get_mut().write_all(&res.buffer()?).await?;
                            io.get_mut().flush().await?;
                            return Ok(End::StartTls);
                        }
                        Action::Close => {
                            io.get_mut().write_all(&res.buffer()?).await?;
                            io.get_mut().shutdown().await.ok();
                            return Ok(End::Closed);
                        }
                        Action::Reply => res.buffer()?,
                    }
                }
            };
            io.get_mut().write_all(&reply).await?;
            io.get_mut().flush().await?;
        }
    }

    /// The TLS-first and auth-first rules `mailin` does not answer as the RFCs ask.
    fn refusal(&self, line: &[u8], tls: bool) -> Option<Vec<u8>> {
        let text = String::from_utf8_lossy(line);
        let verb = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let authed = self
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .authenticated;
        let (code, msg) = match verb.as_str() {
            "AUTH" | "MAIL" | "RCPT" | "DATA" if !tls => {
                (530, "5.7.0 Must issue a STARTTLS command first")
            }
            "STARTTLS" if tls => (503, "5.5.1 TLS already active"),
            "MAIL" if !authed => (530, "5.7.0 Authentication required"),
            _ => return None,
        };
        if code == 530 {
            self.shared
                .records()
                .reject(Kind::Email, PATH, code, format!("{verb} refused: {msg}"));
        }
        Some(format!("{code} {msg}\r\n").into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_found_unfolded_in_the_header_section() {
        let raw =
            "From: a@b\r\nmessage-id:\r\n <x@y>\r\nSubject: s\r\n\r\nMessage-ID: <body@z>\r\n";
        assert_eq!(message_id(raw).as_deref(), Some("<x@y>"));
        assert_eq!(message_id("From: a@b\r\n\r\nMessage-ID: <b@z>\r\n"), None);
    }
}
