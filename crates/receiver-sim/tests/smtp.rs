//! The SMTP receiver: lettre through STARTTLS and AUTH, as the pipeline sends; and a raw
//! exchange for the TLS-first refusals.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use common::start;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use receiver_sim::{Kind, ReceiverConfig, ReceiverHandle};

fn transport(h: &ReceiverHandle, password: &str, mech: Mechanism) -> SmtpTransport {
    let tls = TlsParameters::builder("127.0.0.1".into())
        .add_root_certificate(Certificate::from_pem(h.ca_pem().as_bytes()).unwrap())
        .build_rustls()
        .unwrap();
    SmtpTransport::starttls_relay("127.0.0.1")
        .unwrap()
        .port(h.smtp_addr().port())
        .tls(Tls::Required(tls))
        .credentials(Credentials::new(
            ReceiverConfig::default().smtp_username,
            password.into(),
        ))
        .authentication(vec![mech])
        .build()
}

fn message(id: &str, body: &str) -> Message {
    Message::builder()
        .from("SignalFoundry <soc@example.org>".parse().unwrap())
        .to("Analyst <analyst@example.org>".parse().unwrap())
        .to("oncall@example.org".parse().unwrap())
        .subject("Incident inc-1 opened")
        .message_id(Some(id.to_string()))
        .header(ContentType::TEXT_PLAIN)
        .body(body.to_string())
        .unwrap()
}

#[test]
fn a_mail_sent_through_starttls_and_auth_is_recorded() {
    let h = start();
    let password = ReceiverConfig::default().smtp_password;
    let plain = transport(&h, &password, Mechanism::Plain);
    let body = "Level 12 on web-01.\n.a line starting with a dot\n..two dots\nend\n";
    plain.send(&message("<n-1@signalfoundry>", body)).unwrap();
    // The same notification again (a retry): flagged by its Message-ID. LOGIN works too.
    let login = transport(&h, &password, Mechanism::Login);
    login.send(&message("<n-1@signalfoundry>", body)).unwrap();
    login
        .send(&message("<n-2@signalfoundry>", "other"))
        .unwrap();

    let d = h.deliveries_of(Kind::Email);
    assert_eq!(d.len(), 3);
    assert_eq!(d[0].path, "smtp");
    assert_eq!(d[0].id.as_deref(), Some("<n-1@signalfoundry>"));
    assert_eq!(
        d.iter().map(|d| d.duplicate).collect::<Vec<_>>(),
        [false, true, false]
    );
    assert_eq!(
        d[0].headers,
        [
            ("mail-from".to_string(), "soc@example.org".to_string()),
            ("rcpt-to".to_string(), "analyst@example.org".to_string()),
            ("rcpt-to".to_string(), "oncall@example.org".to_string()),
        ]
    );
    let raw = d[0].body.as_str().unwrap();
    assert!(raw.contains("Subject: Incident inc-1 opened\r\n"), "{raw}");
    // Dot-unstuffed: the lines are as written, not as sent on the wire.
    assert!(
        raw.contains("\r\n.a line starting with a dot\r\n..two dots\r\n"),
        "{raw}"
    );
    assert!(h.rejected().is_empty(), "{:?}", h.rejected());
}

#[test]
fn wrong_credentials_are_refused() {
    let h = start();
    let t = transport(&h, "wrong", Mechanism::Plain);
    let e = t.send(&message("<x@y>", "b")).unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert!(h.deliveries().is_empty());
    let r = h.rejected();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 535);
    assert_eq!(r[0].kind, Some(Kind::Email));
}

fn reply(r: &mut BufReader<TcpStream>) -> (u16, String) {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.len() >= 4, "short reply {line:?}");
        all.push_str(&line);
        if line.as_bytes()[3] == b' ' {
            return (line[..3].parse().unwrap(), all);
        }
    }
}

#[test]
fn auth_and_mail_before_starttls_are_refused_with_530() {
    let h = start();
    let tcp = TcpStream::connect(h.smtp_addr()).unwrap();
    let mut w = tcp.try_clone().unwrap();
    let mut r = BufReader::new(tcp);
    assert_eq!(reply(&mut r).0, 220);
    w.write_all(b"EHLO client.example\r\n").unwrap();
    let (code, ehlo) = reply(&mut r);
    assert_eq!(code, 250);
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(
        !ehlo.contains("AUTH"),
        "AUTH is offered only under TLS: {ehlo}"
    );
    // "\0signalfoundry\0smtp-test-password"
    w.write_all(b"AUTH PLAIN AHNpZ25hbGZvdW5kcnkAc210cC10ZXN0LXBhc3N3b3Jk\r\n")
        .unwrap();
    let (code, text) = reply(&mut r);
    assert_eq!(code, 530, "{text}");
    assert!(text.contains("STARTTLS"), "{text}");
    w.write_all(b"MAIL FROM:<soc@example.org>\r\n").unwrap();
    assert_eq!(reply(&mut r).0, 530);
    w.write_all(b"NOOP\r\n").unwrap();
    assert_eq!(reply(&mut r).0, 250);
    w.write_all(b"QUIT\r\n").unwrap();
    assert_eq!(reply(&mut r).0, 221);
    assert!(h.deliveries().is_empty());
    let rej = h.rejected();
    assert_eq!(rej.len(), 2);
    assert!(rej.iter().all(|r| r.status == 530));
}

#[test]
fn mail_under_tls_without_auth_is_refused_with_530() {
    let h = start();
    let tls = TlsParameters::builder("127.0.0.1".into())
        .add_root_certificate(Certificate::from_pem(h.ca_pem().as_bytes()).unwrap())
        .build_rustls()
        .unwrap();
    let t = SmtpTransport::starttls_relay("127.0.0.1")
        .unwrap()
        .port(h.smtp_addr().port())
        .tls(Tls::Required(tls))
        .build();
    let e = t.send(&message("<x@y>", "b")).unwrap_err();
    assert_eq!(
        e.status().map(|c| c.to_string()).as_deref(),
        Some("530"),
        "{e}"
    );
    assert!(h.deliveries().is_empty());
    assert_eq!(h.rejected().len(), 1);
}
