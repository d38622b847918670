//! The static keys of a profile of the AWS shared credentials file
//! (`~/.aws/credentials`, an INI file), as the AWS SDKs read it:
//! `[name]` sections holding `name = value` properties; lines starting with
//! `#` or `;` are comments, as is the rest of a line after whitespace and
//! `#` or `;`; indented lines continue the property above (sub-properties,
//! ignored here); property names are case-insensitive, profile names are
//! not; a section named twice adds to the first. Only
//! `aws_access_key_id`, `aws_secret_access_key` and `aws_session_token`
//! are taken: no `role_arn`, `credential_process` or SSO settings.
//!
//! Errors never hold values of the file (they may be secrets).

use crate::ids::Secret;

/// Largest credentials file read.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Longest key, secret or token taken.
const MAX_VALUE_BYTES: usize = 8 * 1024;

/// The static keys of a profile.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileKeys {
    /// `aws_access_key_id`.
    pub access_key_id: Secret,
    /// `aws_secret_access_key`.
    pub secret_access_key: Secret,
    /// `aws_session_token`.
    pub session_token: Option<Secret>,
}

/// What a credentials file says about a profile.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// No section of that name.
    NoProfile,
    /// The section has neither a key nor a secret (it configures something
    /// else, such as a role or a process, which is not supported).
    NoKeys,
    /// The profile's static keys.
    Keys(ProfileKeys),
}

/// The keys of `profile` in the text of a credentials file; `Err` when the
/// profile is there but its keys are not usable.
pub fn lookup(text: &str, profile: &str) -> Result<Lookup, String> {
    let mut found = false;
    let (mut key, mut secret, mut token) = (None, None, None);
    let mut in_profile = false;
    for (number, line) in text.lines().enumerate() {
        let number = number + 1;
        if line.starts_with([' ', '\t']) {
            // A continuation (sub-property) of the property above, or an
            // indented blank or comment line.
            continue;
        }
        let line = strip_comment(line).trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest.strip_suffix(']').ok_or_else(|| format!("line {number}: a section header without ']'"))?;
            in_profile = name.trim() == profile;
            found |= in_profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(format!("line {number}: expected `name = value` in profile {profile:?}"));
        };
        let slot = match name.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => &mut key,
            "aws_secret_access_key" => &mut secret,
            "aws_session_token" => &mut token,
            _ => continue,
        };
        let value = value.trim();
        if value.len() > MAX_VALUE_BYTES || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("line {number}: {} in profile {profile:?} is not usable", name.trim()));
        }
        *slot = (!value.is_empty()).then(|| value.to_owned());
    }
    if !found {
        return Ok(Lookup::NoProfile);
    }
    match (key, secret) {
        (None, None) => Ok(Lookup::NoKeys),
        (Some(key), Some(secret)) => Ok(Lookup::Keys(ProfileKeys {
            access_key_id: Secret::new(key),
            secret_access_key: Secret::new(secret),
            session_token: token.map(Secret::new),
        })),
        _ => Err(format!("profile {profile:?} has only one of aws_access_key_id and aws_secret_access_key")),
    }
}

/// The line without a comment: a whole line starting with `#` or `;`, or
/// what follows whitespace and `#` or `;`.
fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with(['#', ';']) {
        return "";
    }
    let bytes = line.as_bytes();
    let cut = (1..bytes.len()).find(|&i| matches!(bytes[i], b'#' | b';') && bytes[i - 1].is_ascii_whitespace());
    cut.map_or(line, |i| &line[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str, profile: &str) -> (String, String, Option<String>) {
        match lookup(text, profile) {
            Ok(Lookup::Keys(k)) => (
                k.access_key_id.expose().to_owned(),
                k.secret_access_key.expose().to_owned(),
                k.session_token.map(|t| t.expose().to_owned()),
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn profiles_are_found_by_name() {
        let text = "\
# written by aws configure
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key=default/Secret+x
region = eu-west-1

; another one
[scalelite]   ; ours
AWS_Access_Key_Id = AKIASCALELITE # the key
aws_secret_access_key = s3cr3t
s3 =
    max_concurrent_requests = 20
aws_session_token = IQoJb3JpZ2luX2VjE==
[profile other]
aws_access_key_id = AKIAOTHER
[scalelite]
aws_session_token = later-token
";
        assert_eq!(keys(text, "default"), ("AKIADEFAULT".into(), "default/Secret+x".into(), None));
        assert_eq!(
            keys(text, "scalelite"),
            ("AKIASCALELITE".into(), "s3cr3t".into(), Some("later-token".into())),
            "a section named twice adds to the first; comments and sub-properties are skipped"
        );
        assert_eq!(lookup(text, "missing"), Ok(Lookup::NoProfile));
        assert_eq!(lookup(text, "Default"), Ok(Lookup::NoProfile), "profile names are case-sensitive");
        assert_eq!(lookup("[sso]\nsso_start_url = https://x\n", "sso"), Ok(Lookup::NoKeys));
        assert_eq!(lookup("", "default"), Ok(Lookup::NoProfile));
        // CRLF line ends.
        assert_eq!(keys("[default]\r\naws_access_key_id=A\r\naws_secret_access_key=B\r\n", "default").1, "B");
    }

    #[test]
    fn malformed_profiles_are_refused_without_echoing_values() {
        for text in [
            "[default\naws_access_key_id = very-secret\n",
            "[default]\nvery-secret\n",
            "[default]\naws_access_key_id = A\n",
            "[default]\naws_secret_access_key = very-secret\n",
            "[default]\naws_access_key_id = A\naws_secret_access_key = very\u{7}secret\n",
            "[default]\naws_access_key_id = A\naws_secret_access_key = very secret\n",
            "[default]\naws_access_key_id = A\naws_secret_access_key = véry-secret\n",
            &format!("[default]\naws_access_key_id = A\naws_secret_access_key = very{}\n", "x".repeat(MAX_VALUE_BYTES)),
        ] {
            let error = lookup(text, "default").err().unwrap_or_else(|| panic!("{text:?}"));
            assert!(!error.contains("very") && error.len() < 200, "{error}");
        }
        // Other profiles' mistakes do not matter.
        assert!(matches!(
            lookup("[other]\njunk\n[default]\naws_access_key_id=A\naws_secret_access_key=B\n", "default"),
            Ok(Lookup::Keys(_))
        ));
    }
}
