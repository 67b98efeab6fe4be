//! htpasswd password hashes, verified as nginx's `auth_basic_user_file`
//! does: every format `htpasswd` (apache2-utils) writes — apr1 (its
//! default), bcrypt (`-B`), `{SHA}` (`-s`), DES crypt (`-d`), SHA-256 and
//! SHA-512 crypt (`-2`, `-5`) — plus `$1$` MD5 crypt, `{SSHA}` and
//! `{PLAIN}`, which nginx also reads.

use base64::Engine as _;
use md5::{Digest as _, Md5};
use subtle::ConstantTimeEq;

/// The scheme of a stored hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashFormat {
    Apr1,
    Md5Crypt,
    Bcrypt,
    Sha1,
    SaltedSha1,
    Plain,
    DesCrypt,
    Sha256Crypt,
    Sha512Crypt,
}

const CRYPT64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn is_crypt64(s: &str) -> bool {
    s.bytes().all(|b| CRYPT64.contains(&b))
}

/// The format of a stored hash, or why it is not one we can verify.
pub fn format_of(hash: &str) -> Result<HashFormat, String> {
    let f = if hash.starts_with("$apr1$") {
        HashFormat::Apr1
    } else if hash.starts_with("$1$") {
        HashFormat::Md5Crypt
    } else if ["$2a$", "$2b$", "$2y$", "$2x$"]
        .iter()
        .any(|p| hash.starts_with(p))
    {
        HashFormat::Bcrypt
    } else if hash.starts_with("$5$") {
        HashFormat::Sha256Crypt
    } else if hash.starts_with("$6$") {
        HashFormat::Sha512Crypt
    } else if let Some(b64) = hash.strip_prefix("{SHA}") {
        if decode_b64(b64).is_none_or(|d| d.len() != 20) {
            return Err("{SHA} hash is not base64 of 20 bytes".into());
        }
        HashFormat::Sha1
    } else if let Some(b64) = hash.strip_prefix("{SSHA}") {
        if decode_b64(b64).is_none_or(|d| d.len() <= 20) {
            return Err("{SSHA} hash is not base64 of a digest and a salt".into());
        }
        HashFormat::SaltedSha1
    } else if hash.starts_with("{PLAIN}") {
        HashFormat::Plain
    } else if hash.len() == 13 && is_crypt64(hash) {
        HashFormat::DesCrypt
    } else {
        return Err(
            "not a password hash htpasswd writes (apr1, bcrypt, {SHA}, crypt, SHA-256/512 crypt)"
                .into(),
        );
    };
    Ok(f)
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// Whether `password` matches the stored `hash` (false for any hash
/// [`format_of`] refuses).
pub fn verify(password: &str, hash: &str) -> bool {
    let Ok(format) = format_of(hash) else {
        return false;
    };
    let ct_eq = |a: &[u8], b: &[u8]| bool::from(a.ct_eq(b));
    match format {
        HashFormat::Apr1 => md5_crypt(password.as_bytes(), hash, "$apr1$")
            .is_some_and(|h| ct_eq(h.as_bytes(), hash.as_bytes())),
        HashFormat::Md5Crypt => md5_crypt(password.as_bytes(), hash, "$1$")
            .is_some_and(|h| ct_eq(h.as_bytes(), hash.as_bytes())),
        HashFormat::Sha1 => decode_b64(&hash["{SHA}".len()..])
            .is_some_and(|d| ct_eq(&sha1::Sha1::digest(password.as_bytes()), &d)),
        HashFormat::SaltedSha1 => decode_b64(&hash["{SSHA}".len()..]).is_some_and(|d| {
            let (digest, salt) = d.split_at(20);
            let mut h = sha1::Sha1::new();
            h.update(password.as_bytes());
            h.update(salt);
            ct_eq(&h.finalize(), digest)
        }),
        HashFormat::Plain => ct_eq(password.as_bytes(), &hash.as_bytes()["{PLAIN}".len()..]),
        HashFormat::Bcrypt => pwhash::bcrypt::verify(password, hash),
        HashFormat::DesCrypt => pwhash::unix_crypt::verify(password, hash),
        HashFormat::Sha256Crypt => pwhash::sha256_crypt::verify(password, hash),
        HashFormat::Sha512Crypt => pwhash::sha512_crypt::verify(password, hash),
    }
}

/// MD5 crypt (`$1$`) and Apache's variant (`$apr1$`), which differ only in
/// the magic string; the salt is read from `setting`.
fn md5_crypt(pw: &[u8], setting: &str, magic: &str) -> Option<String> {
    let rest = setting.strip_prefix(magic)?;
    let salt = rest.split('$').next()?;
    let salt = &salt.as_bytes()[..salt.len().min(8)];
    let mut alt = Md5::new();
    alt.update(pw);
    alt.update(salt);
    alt.update(pw);
    let alt = alt.finalize();
    let mut ctx = Md5::new();
    ctx.update(pw);
    ctx.update(magic.as_bytes());
    ctx.update(salt);
    let mut left = pw.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let mut i = pw.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pw[..1]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(pw);
        } else {
            c.update(fin);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(pw);
        }
        if round & 1 == 1 {
            c.update(fin);
        } else {
            c.update(pw);
        }
        fin = c.finalize();
    }
    let mut out = format!("{magic}{}$", String::from_utf8_lossy(salt));
    let mut to64 = |mut v: u32, n: usize| {
        for _ in 0..n {
            out.push(char::from(CRYPT64[(v & 0x3f) as usize]));
            v >>= 6;
        }
    };
    let b = |i: usize| u32::from(fin[i]);
    for (a, m, z) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        to64((b(a) << 16) | (b(m) << 8) | b(z), 4);
    }
    to64(b(11), 2);
    Some(out)
}

/// The users of an htpasswd file (`user:hash` lines; blank lines and `#`
/// comments skipped), and a problem for each line that is not one.
pub fn parse_file(text: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut users = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(':') {
            Some((user, hash)) if !user.is_empty() => {
                // A trailing `:comment` field, as nginx allows.
                let hash = hash.split(':').next().unwrap_or_default();
                users.push((user.to_string(), hash.to_string()));
            }
            _ => problems.push(format!("line {} is not `user:hash`", i + 1)),
        }
    }
    (users, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "s3cret!";

    /// Written by Debian's htpasswd (apache2-utils 2.4) and `openssl passwd -1`
    /// for the password `s3cret!`: the tests need neither tool.
    const KNOWN: &[(HashFormat, &str)] = &[
        (HashFormat::Apr1, "$apr1$jitd..FA$xI0fCmbJ3RlUbYXd8jRj8/"),
        (
            HashFormat::Bcrypt,
            "$2y$05$IJBrO81/qDoeWwAqT1uupeDUlNr21AzzUt8O3LwH9fC1S/1BUb/gS",
        ),
        (HashFormat::Sha1, "{SHA}YWXIkDPDfrJ6I4yV+0kqTJdT5SE="),
        (HashFormat::DesCrypt, "TOFKzovShJH82"),
        (
            HashFormat::Sha256Crypt,
            "$5$gyGY/68v1fN3e.iA$ec3ALqiYCDncxP6U/8OQqwanFl0RkgMS6YTrvHqsWI4",
        ),
        (
            HashFormat::Sha512Crypt,
            "$6$aKNivaxHtWP8OZU.$5CWATrEaBK1dbIr46a18m0.pJx40jYNMxHuNX9Osn.5KK/1vk/yF7TGaUqU1p8Cza57EuWWwcXfBZbjvOz2m4.",
        ),
        (HashFormat::Md5Crypt, "$1$abcdefgh$CSiVTZddYDOMinbJG4io/1"),
        (HashFormat::Plain, "{PLAIN}s3cret!"),
    ];

    #[test]
    fn every_known_hash_verifies_its_password_and_no_other() {
        for (format, hash) in KNOWN {
            assert_eq!(format_of(hash), Ok(*format), "{hash}");
            assert!(verify(PASSWORD, hash), "{format:?} {hash}");
            for wrong in ["", "s3cret", "s3cret!!", "S3cret!"] {
                assert!(!verify(wrong, hash), "{format:?} accepted {wrong:?}");
            }
        }
    }

    #[test]
    fn salted_sha1_verifies() {
        let salt = b"saltsalt";
        let mut h = sha1::Sha1::new();
        h.update(PASSWORD.as_bytes());
        h.update(salt);
        let mut raw = h.finalize().to_vec();
        raw.extend_from_slice(salt);
        let hash = format!(
            "{{SSHA}}{}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        assert_eq!(format_of(&hash), Ok(HashFormat::SaltedSha1));
        assert!(verify(PASSWORD, &hash));
        assert!(!verify("nope", &hash));
    }

    #[test]
    fn unknown_or_damaged_hashes_are_refused_and_never_verify() {
        for hash in [
            "",
            "plaintext-password",
            "{SHA}not-base64!",
            "{SHA}YWJj",
            "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
            "TOFKzovShJH8",
        ] {
            assert!(format_of(hash).is_err(), "{hash:?}");
            assert!(!verify(PASSWORD, hash), "{hash:?}");
            assert!(!verify("", hash), "{hash:?}");
        }
    }

    #[test]
    fn an_htpasswd_file_yields_its_users_and_names_bad_lines() {
        let file = "# users\nalice:$apr1$jitd..FA$xI0fCmbJ3RlUbYXd8jRj8/\r\n\nbob:{SHA}YWXIkDPDfrJ6I4yV+0kqTJdT5SE=:Bob B\nnocolon\n:nouser\n";
        let (users, problems) = parse_file(file);
        assert_eq!(
            users,
            [
                (
                    "alice".to_string(),
                    "$apr1$jitd..FA$xI0fCmbJ3RlUbYXd8jRj8/".to_string()
                ),
                (
                    "bob".to_string(),
                    "{SHA}YWXIkDPDfrJ6I4yV+0kqTJdT5SE=".to_string()
                ),
            ]
        );
        assert_eq!(
            problems,
            ["line 5 is not `user:hash`", "line 6 is not `user:hash`"]
        );
    }

    /// Fresh hashes from the real htpasswd in every format it writes, when it
    /// is installed (`apt-get install apache2-utils`); the known hashes above
    /// cover the same formats without it.
    #[test]
    fn hashes_written_by_htpasswd_verify_when_it_is_installed() {
        let Ok(out) = std::process::Command::new("htpasswd").arg("-h").output() else {
            eprintln!("htpasswd not installed: covered by the known hashes only");
            return;
        };
        drop(out);
        for (flag, format) in [
            ("-m", HashFormat::Apr1),
            ("-B", HashFormat::Bcrypt),
            ("-s", HashFormat::Sha1),
            ("-d", HashFormat::DesCrypt),
            ("-2", HashFormat::Sha256Crypt),
            ("-5", HashFormat::Sha512Crypt),
        ] {
            let out = std::process::Command::new("htpasswd")
                .args(["-nb", flag, "alice", "pa55:word"])
                .output()
                .expect("htpasswd runs");
            assert!(out.status.success(), "htpasswd {flag}");
            let text = String::from_utf8(out.stdout).expect("utf-8");
            let (users, problems) = parse_file(&text);
            assert!(problems.is_empty(), "{problems:?}");
            let [(user, hash)] = &users[..] else {
                panic!("one user from {text:?}");
            };
            assert_eq!(user, "alice");
            assert_eq!(format_of(hash), Ok(format), "{flag}: {hash}");
            // DES crypt reads 8 characters: "pa55:wor" is the whole password.
            assert!(verify("pa55:word", hash), "{flag}: {hash}");
            assert!(!verify("pa55-word", hash), "{flag}: {hash}");
        }
    }
}
