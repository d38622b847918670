//! The LRS (xAPI) payload a multitenant create hands to BBB as
//! `meta_secret-lrs-payload`: the tenant's LRS endpoint and credentials,
//! encrypted with the chosen server's secret so that only that server can
//! read them.
//!
//! The format is Scalelite's, which is OpenSSL's `enc` format (`openssl enc
//! -aes-256-cbc -pbkdf2 -iter 10000 -md sha256`) with the 8-byte
//! `Salted__` magic replaced by 8 random bytes:
//!
//! * salt: 8 random bytes;
//! * 48 bytes = PBKDF2-HMAC-SHA256(password = server secret, salt, 10 000
//!   iterations): the AES-256 key is the first 32, the CBC IV the last 16;
//! * output: strict Base64 (no line breaks) of 8 random bytes ‖ salt ‖
//!   AES-256-CBC ciphertext with PKCS#7 padding.

use aes::Aes256;
use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::ids::Secret;

/// PBKDF2 iterations.
pub const PBKDF2_ITERATIONS: u32 = 10_000;

const SALT_LEN: usize = 8;
const PREFIX_LEN: usize = 8;
const KEY_LEN: usize = 32;
const IV_LEN: usize = 16;
const BLOCK: usize = 16;

/// How a BBB server authenticates to the tenant's LRS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LrsAuth<'a> {
    /// HTTP basic credentials (`lrs_username`, `lrs_password`; a missing
    /// password is sent as `null`, as Scalelite does).
    Basic {
        /// `lrs_username`.
        username: &'a str,
        /// `lrs_password`.
        password: Option<&'a str>,
    },
    /// A bearer token obtained from Keycloak.
    Token(&'a str),
}

/// The clear-text payload: `{"lrs_endpoint", "lrs_username",
/// "lrs_password"}` or `{"lrs_endpoint", "lrs_token"}`, compact, in this
/// key order.
pub fn payload_json(endpoint: &str, auth: LrsAuth<'_>) -> String {
    let mut map = Map::new();
    map.insert("lrs_endpoint".into(), endpoint.into());
    match auth {
        LrsAuth::Basic { username, password } => {
            map.insert("lrs_username".into(), username.into());
            map.insert("lrs_password".into(), password.map_or(Value::Null, Value::from));
        }
        LrsAuth::Token(token) => {
            map.insert("lrs_token".into(), token.into());
        }
    }
    Value::Object(map).to_string()
}

/// Encrypts `plaintext` for the server whose secret is `secret` (fresh
/// random salt and prefix).
pub fn encrypt(plaintext: &[u8], secret: &Secret) -> String {
    seal(plaintext, secret.expose().as_bytes(), rand::random(), rand::random())
}

/// Decrypts a payload made by [`encrypt`]; `None` when it is malformed or
/// `secret` is not the one it was made for (padding check).
pub fn decrypt(encoded: &str, secret: &Secret) -> Option<Vec<u8>> {
    let raw = STANDARD.decode(encoded.trim()).ok()?;
    if raw.len() < PREFIX_LEN + SALT_LEN + BLOCK || !(raw.len() - PREFIX_LEN - SALT_LEN).is_multiple_of(BLOCK) {
        return None;
    }
    let (salt, ciphertext) = raw[PREFIX_LEN..].split_at(SALT_LEN);
    let (key, iv) = derive(secret.expose().as_bytes(), salt);
    let mut buffer = ciphertext.to_vec();
    let plain = cbc::Decryptor::<Aes256>::new(&key.into(), &iv.into()).decrypt_padded::<Pkcs7>(&mut buffer).ok()?;
    Some(plain.to_vec())
}

/// Key and IV from the password and salt.
fn derive(password: &[u8], salt: &[u8]) -> ([u8; KEY_LEN], [u8; IV_LEN]) {
    let material = pbkdf2::pbkdf2_hmac_array::<Sha256, { KEY_LEN + IV_LEN }>(password, salt, PBKDF2_ITERATIONS);
    let mut key = [0u8; KEY_LEN];
    let mut iv = [0u8; IV_LEN];
    key.copy_from_slice(&material[..KEY_LEN]);
    iv.copy_from_slice(&material[KEY_LEN..]);
    (key, iv)
}

fn seal(plaintext: &[u8], password: &[u8], prefix: [u8; PREFIX_LEN], salt: [u8; SALT_LEN]) -> String {
    let (key, iv) = derive(password, &salt);
    let sealed = cbc::Encryptor::<Aes256>::new(&key.into(), &iv.into()).encrypt_padded_vec::<Pkcs7>(plaintext);
    let mut out = Vec::with_capacity(PREFIX_LEN + SALT_LEN + sealed.len());
    out.extend_from_slice(&prefix);
    out.extend_from_slice(&salt);
    out.extend_from_slice(&sealed);
    STANDARD.encode(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = r#"{"lrs_endpoint":"https://lrs.example.org/xapi","lrs_token":"tok"}"#;

    #[test]
    fn pbkdf2_hmac_sha256_matches_rfc_7914() {
        // RFC 7914 §11: PBKDF2-HMAC-SHA256, P = "passwd", S = "salt", c = 1.
        let out = pbkdf2::pbkdf2_hmac_array::<Sha256, 64>(b"passwd", b"salt", 1);
        assert_eq!(
            hex::encode(out),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc\
             49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
        );
    }

    #[test]
    fn matches_openssl_enc_with_the_magic_replaced() {
        // `printf '%s' "$PLAIN" | openssl enc -aes-256-cbc -pbkdf2 -iter 10000
        //  -md sha256 -S 0102030405060708 -pass pass:bbb-secret -P` prints
        // this key and IV; without -P (and with -S, which omits the
        // `Salted__` header) it prints the ciphertext below.
        let salt = [1, 2, 3, 4, 5, 6, 7, 8];
        let (key, iv) = derive(b"bbb-secret", &salt);
        assert_eq!(hex::encode_upper(key), "10634824C6F05CD1137B54776FBBEFD524E671C3A2B18D10A6A06D0E24EEAFBD");
        assert_eq!(hex::encode_upper(iv), "B582AE1DC20C78DA6F55612D647A0B6F");
        let openssl_ciphertext = STANDARD
            .decode(
                "/sO3XWQBYBFF7UDEKQ5AoBtByvWqsi8PMG882VBgWWbtu7hNmYTAQamGp8Z2uSEj1EdycOhFiZ/kVEWQkq06gLVuLG7M1bC3MqH+4w//WsA=",
            )
            .unwrap();
        // `openssl enc` without -S writes `Salted__` ‖ salt ‖ ciphertext:
        // Scalelite's layout with its random prefix set to the magic.
        let sealed = seal(PLAIN.as_bytes(), b"bbb-secret", *b"Salted__", salt);
        let mut expected = b"Salted__".to_vec();
        expected.extend_from_slice(&salt);
        expected.extend_from_slice(&openssl_ciphertext);
        assert_eq!(sealed, STANDARD.encode(&expected));
        assert_eq!(decrypt(&sealed, &Secret::new("bbb-secret")).unwrap(), PLAIN.as_bytes());
    }

    #[test]
    fn round_trip_with_random_salt() {
        let secret = Secret::new("8cd8ef52e8e101574e400365b55e11a6");
        let plain = payload_json("https://lrs.example.org/xapi", LrsAuth::Token("tok"));
        assert_eq!(plain, PLAIN);
        let a = encrypt(plain.as_bytes(), &secret);
        let b = encrypt(plain.as_bytes(), &secret);
        assert_ne!(a, b, "fresh salt each time");
        assert!(!a.contains('\n'));
        assert_eq!(decrypt(&a, &secret).unwrap(), plain.as_bytes());
        assert!(decrypt(&a, &Secret::new("other")).is_none_or(|p| p != plain.as_bytes()));
        assert!(decrypt("not base64!", &secret).is_none());
        assert!(decrypt(&STANDARD.encode([0u8; 20]), &secret).is_none());
        // A block-aligned plaintext gets a whole block of padding.
        let sixteen = encrypt(&[b'x'; 16], &secret);
        assert_eq!(STANDARD.decode(&sixteen).unwrap().len(), 8 + 8 + 32);
        assert_eq!(decrypt(&sixteen, &secret).unwrap(), [b'x'; 16]);
    }

    #[test]
    fn basic_credentials_json() {
        let json = payload_json("https://lrs/x", LrsAuth::Basic { username: "u", password: Some("p\"w") });
        assert_eq!(json, r#"{"lrs_endpoint":"https://lrs/x","lrs_username":"u","lrs_password":"p\"w"}"#);
        let json = payload_json("https://lrs/x", LrsAuth::Basic { username: "u", password: None });
        assert_eq!(json, r#"{"lrs_endpoint":"https://lrs/x","lrs_username":"u","lrs_password":null}"#);
    }
}
