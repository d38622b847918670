//! A profile of the AWS shared credentials file (`~/.aws/credentials`) and
//! shared config file (`~/.aws/config`), INI files, as the AWS SDKs read
//! them: sections holding `name = value` properties; lines starting with
//! `#` or `;` are comments, as is the rest of a line after whitespace and
//! `#` or `;`; indented lines continue the property above (sub-properties,
//! ignored here); property names are case-insensitive, profile names are
//! not; a section named twice adds to the first, and a property set twice
//! takes its last value. In the credentials file a profile's section is
//! `[name]`; in the config file it is `[profile name]`, and `[default]` (or
//! `[profile default]`) for the default profile: a section of the config
//! file named without `profile ` is not a profile, as in the SDKs.
//!
//! A profile's properties are those of both files, the credentials file's
//! taking precedence for a property set in both ([`merge`]). Taken:
//! `aws_access_key_id`, `aws_secret_access_key` and `aws_session_token`
//! (static keys), `credential_process` (a command printing credentials,
//! used when there are no static keys, as in the SDK for Ruby and botocore),
//! `region`, and a role to assume with STS `AssumeRole` ([`RoleProfile`]:
//! `role_arn` with `source_profile` or `credential_source`, and
//! `role_session_name`, `external_id`, `duration_seconds`), which the SDKs
//! use before the profile's static keys. A profile that assumes a role with
//! a web identity token file (`web_identity_token_file`) or signs in with
//! IAM Identity Center (`sso_*`) is refused: the SDKs would use that
//! instead of its static keys, and it is not supported.
//!
//! Errors never hold values of the files (they may be secrets).

use std::collections::BTreeMap;

use crate::ids::Secret;

/// Largest credentials or config file read.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Longest key, secret, token or command taken.
const MAX_VALUE_BYTES: usize = 8 * 1024;

/// Which of the two shared files a text is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// The shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`): `[name]`.
    Credentials,
    /// The shared config file (`AWS_CONFIG_FILE`): `[profile name]`,
    /// `[default]`.
    Config,
}

/// The properties of one profile in one file (lower-case names), `None`
/// when the file has no section for it.
pub type Properties = BTreeMap<String, String>;

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

/// Where a profile's credentials come from.
#[derive(Clone, Debug, PartialEq)]
pub enum ProfileCredentials {
    /// The profile sets no credentials (it may set only a region): the
    /// sources after the profile are asked.
    None,
    /// Static keys, and the file they were read from.
    Keys(ProfileKeys, FileKind),
    /// `credential_process`, and the file it was read from.
    Process(Secret, FileKind),
}

/// A role a profile assumes with STS `AssumeRole`.
#[derive(Clone, Debug, PartialEq)]
pub struct RoleProfile {
    /// `role_arn`.
    pub role_arn: String,
    /// Where the credentials that assume it come from.
    pub source: RoleSource,
    /// `role_session_name` (2 to 64 of `[A-Za-z0-9_+=,.@-]`).
    pub session_name: Option<String>,
    /// `external_id` (2 to 1224 of `[A-Za-z0-9_+=,.@:/-]`).
    pub external_id: Option<String>,
    /// `duration_seconds` (900 to 43 200).
    pub duration_seconds: Option<u32>,
}

/// Where the credentials assuming a role come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleSource {
    /// `source_profile`: that profile's credentials (its static keys, its
    /// `credential_process`, or the role it assumes in turn).
    Profile(String),
    /// `credential_source = Environment`: `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`.
    Environment,
    /// `credential_source = Ec2InstanceMetadata`: EC2's instance metadata
    /// service.
    Ec2InstanceMetadata,
    /// `credential_source = EcsContainer`: the container credentials
    /// endpoint.
    EcsContainer,
}

/// What a profile of the two files says.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// `region`.
    pub region: Option<String>,
    /// Its own credentials (static keys, else `credential_process`).
    pub credentials: ProfileCredentials,
    /// The role it assumes: when set, the SDKs use the role's credentials,
    /// not [`Profile::credentials`] (those may still assume the role, with
    /// `source_profile` naming the profile itself).
    pub role: Option<RoleProfile>,
}

/// The properties of `profile` in the text of a file of `kind`: `None`
/// when no section is the profile's; `Err` when the file or the profile's
/// lines are malformed (other profiles' lines are not looked at).
pub fn section(text: &str, profile: &str, kind: FileKind) -> Result<Option<Properties>, String> {
    let mut found = false;
    let mut properties = Properties::new();
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
            in_profile = section_profile(name.trim(), kind) == Some(profile);
            found |= in_profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(format!("line {number}: expected `name = value` in profile {profile:?}"));
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if value.len() > MAX_VALUE_BYTES {
            return Err(format!("line {number}: {name} in profile {profile:?} is too long"));
        }
        properties.insert(name, value.to_owned());
    }
    Ok(found.then_some(properties))
}

/// The profile a section header (without its brackets) names in a file of
/// `kind`, if any.
fn section_profile(header: &str, kind: FileKind) -> Option<&str> {
    match kind {
        FileKind::Credentials => Some(header),
        FileKind::Config if header == "default" => Some(header),
        FileKind::Config => {
            let rest = header.strip_prefix("profile")?;
            rest.starts_with([' ', '\t']).then(|| rest.trim()).filter(|name| !name.is_empty())
        }
    }
}

/// Properties that make a profile get its credentials some way that is
/// not supported, and what that way is.
const UNSUPPORTED: [(&str, &str); 5] = [
    ("web_identity_token_file", "a web identity (web_identity_token_file; AWS_WEB_IDENTITY_TOKEN_FILE is read)"),
    ("sso_session", "IAM Identity Center (sso_session)"),
    ("sso_start_url", "IAM Identity Center (sso_start_url)"),
    ("sso_account_id", "IAM Identity Center (sso_account_id)"),
    ("sso_role_name", "IAM Identity Center (sso_role_name)"),
];

/// The profile `profile` of the config file's and the credentials file's
/// properties (the credentials file's take precedence): `Err` when what it
/// sets is not usable.
pub fn merge(profile: &str, config: Option<&Properties>, credentials: Option<&Properties>) -> Result<Profile, String> {
    // Non-empty values only (`s3 =` opens sub-properties).
    let get = |name: &str| -> Option<(&str, FileKind)> {
        [(credentials, FileKind::Credentials), (config, FileKind::Config)].into_iter().find_map(|(properties, kind)| {
            let value = properties?.get(name)?;
            (!value.is_empty()).then_some((value.as_str(), kind))
        })
    };
    if let Some((_, what)) = UNSUPPORTED.iter().find(|(name, _)| get(name).is_some()) {
        return Err(format!(
            "profile {profile:?} gets its credentials with {what}, which is not supported (static keys, \
             credential_process and role_arn with source_profile or credential_source are)"
        ));
    }
    let role = role_profile(profile, &get)?;
    let token = |name: &str| -> Result<Option<(String, FileKind)>, String> {
        match get(name) {
            None => Ok(None),
            Some((value, kind)) if value.bytes().all(|b| b.is_ascii_graphic()) => Ok(Some((value.to_owned(), kind))),
            Some(_) => Err(format!("{name} in profile {profile:?} is not usable")),
        }
    };
    let region = match get("region") {
        None => None,
        Some((region, _)) if region.len() <= 64 && region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => {
            Some(region.to_owned())
        }
        Some(_) => return Err(format!("region in profile {profile:?} is not a region name")),
    };
    let (key, secret, session) =
        (token("aws_access_key_id")?, token("aws_secret_access_key")?, token("aws_session_token")?);
    let credentials = match (key, secret) {
        (Some((key, kind)), Some((secret, _))) => ProfileCredentials::Keys(
            ProfileKeys {
                access_key_id: Secret::new(key),
                secret_access_key: Secret::new(secret),
                session_token: session.map(|(token, _)| Secret::new(token)),
            },
            kind,
        ),
        (Some(_), None) | (None, Some(_)) => {
            return Err(format!("profile {profile:?} has only one of aws_access_key_id and aws_secret_access_key"));
        }
        (None, None) => match get("credential_process") {
            Some((command, kind)) if !command.chars().any(char::is_control) => {
                ProfileCredentials::Process(Secret::new(command), kind)
            }
            Some(_) => return Err(format!("credential_process in profile {profile:?} is not usable")),
            None => ProfileCredentials::None,
        },
    };
    Ok(Profile { region, credentials, role })
}

/// The role a profile assumes (`role_arn` and what goes with it), `None`
/// when it sets none; `get` gives a property's non-empty value.
fn role_profile<'a>(
    profile: &str,
    get: &impl Fn(&str) -> Option<(&'a str, FileKind)>,
) -> Result<Option<RoleProfile>, String> {
    let value = |name: &str| get(name).map(|(value, _)| value);
    let Some(role_arn) = value("role_arn") else {
        return match ["source_profile", "credential_source", "role_session_name", "external_id"]
            .into_iter()
            .find(|name| get(name).is_some())
        {
            Some(name) => Err(format!("profile {profile:?} sets {name} without role_arn")),
            None => Ok(None),
        };
    };
    if !role_arn.starts_with("arn:") || role_arn.len() > 2048 || !role_arn.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "role_arn in profile {profile:?} is not a role's ARN (arn:aws:iam::<account>:role/<name>)"
        ));
    }
    let source = match (value("source_profile"), value("credential_source")) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "profile {profile:?} sets both source_profile and credential_source (one is expected)"
            ));
        }
        (None, None) => {
            return Err(format!("profile {profile:?} sets role_arn without source_profile or credential_source"));
        }
        (Some(name), None) if name.len() <= 256 && !name.chars().any(char::is_control) => {
            RoleSource::Profile(name.to_owned())
        }
        (Some(_), None) => return Err(format!("source_profile in profile {profile:?} is not a profile name")),
        (None, Some("Environment")) => RoleSource::Environment,
        (None, Some("Ec2InstanceMetadata")) => RoleSource::Ec2InstanceMetadata,
        (None, Some("EcsContainer")) => RoleSource::EcsContainer,
        (None, Some(_)) => {
            return Err(format!(
                "credential_source in profile {profile:?} is not one of Environment, Ec2InstanceMetadata and \
                 EcsContainer"
            ));
        }
    };
    let checked = |name: &str, lengths: std::ops::RangeInclusive<usize>, extra: &[u8]| match value(name) {
        None => Ok(None),
        Some(v) if lengths.contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b)) => {
            Ok(Some(v.to_owned()))
        }
        Some(_) => Err(format!(
            "{name} in profile {profile:?} is not usable ({} to {} letters, digits and {})",
            lengths.start(),
            lengths.end(),
            String::from_utf8_lossy(extra)
        )),
    };
    let session_name = checked("role_session_name", 2..=64, b"_+=,.@-")?;
    let external_id = checked("external_id", 2..=1224, b"_+=,.@:/-")?;
    let duration_seconds = match value("duration_seconds") {
        None => None,
        Some(v) => match v.parse::<u32>() {
            Ok(seconds) if (900..=43_200).contains(&seconds) => Some(seconds),
            _ => {
                return Err(format!(
                    "duration_seconds in profile {profile:?} is not a number of seconds from 900 to 43200"
                ));
            }
        },
    };
    Ok(Some(RoleProfile { role_arn: role_arn.to_owned(), source, session_name, external_id, duration_seconds }))
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

    /// The profile of a credentials file alone.
    fn from_credentials(text: &str, profile: &str) -> Result<Option<Profile>, String> {
        let properties = section(text, profile, FileKind::Credentials)?;
        properties.map(|p| merge(profile, None, Some(&p))).transpose()
    }

    /// The profile of a config file alone.
    fn from_config(text: &str, profile: &str) -> Result<Option<Profile>, String> {
        let properties = section(text, profile, FileKind::Config)?;
        properties.map(|p| merge(profile, Some(&p), None)).transpose()
    }

    fn keys(profile: Result<Option<Profile>, String>) -> (String, String, Option<String>) {
        match profile {
            Ok(Some(Profile { credentials: ProfileCredentials::Keys(k, _), .. })) => (
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
        assert_eq!(keys(from_credentials(text, "default")), ("AKIADEFAULT".into(), "default/Secret+x".into(), None));
        assert_eq!(
            keys(from_credentials(text, "scalelite")),
            ("AKIASCALELITE".into(), "s3cr3t".into(), Some("later-token".into())),
            "a section named twice adds to the first; comments and sub-properties are skipped"
        );
        assert_eq!(from_credentials(text, "missing"), Ok(None));
        assert_eq!(from_credentials(text, "Default"), Ok(None), "profile names are case-sensitive");
        assert_eq!(from_credentials("", "default"), Ok(None));
        // CRLF line ends.
        assert_eq!(
            keys(from_credentials("[default]\r\naws_access_key_id=A\r\naws_secret_access_key=B\r\n", "default")).1,
            "B"
        );
        // Only a region: no credentials, the next sources are asked.
        assert_eq!(
            from_credentials("[default]\nregion = eu-west-1\n", "default"),
            Ok(Some(Profile { region: Some("eu-west-1".into()), credentials: ProfileCredentials::None, role: None }))
        );
    }

    #[test]
    fn config_file_profiles_are_named_with_profile_and_default_without() {
        let text = "\
[default]
region = eu-west-1
[profile scalelite]
region = eu-central-1
credential_process = /opt/bin/creds --profile \"with space\"
[scalelite]
region = us-west-2
[profile   spaced  ]
region=ap-south-1
[profile default]
output = json
[profilex]
region = us-east-2
";
        let scalelite = from_config(text, "scalelite").unwrap().unwrap();
        assert_eq!(
            scalelite.region.as_deref(),
            Some("eu-central-1"),
            "[scalelite] is not a profile of the config file"
        );
        match scalelite.credentials {
            ProfileCredentials::Process(command, FileKind::Config) => {
                assert_eq!(command.expose(), "/opt/bin/creds --profile \"with space\"")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(from_config(text, "default").unwrap().unwrap().region.as_deref(), Some("eu-west-1"));
        assert_eq!(from_config(text, "spaced").unwrap().unwrap().region.as_deref(), Some("ap-south-1"));
        assert_eq!(from_config(text, "x"), Ok(None), "[profilex] names no profile");
        assert_eq!(from_config(text, "profilex"), Ok(None));
        assert_eq!(
            from_config("[profile default]\nregion = sa-east-1\n", "default").unwrap().unwrap().region.as_deref(),
            Some("sa-east-1")
        );
    }

    #[test]
    fn the_credentials_file_takes_precedence_over_the_config_file() {
        let config = section(
            "[profile s]\nregion = eu-west-1\naws_access_key_id = AKIACONFIG\naws_secret_access_key = config\n\
             credential_process = /bin/creds\n",
            "s",
            FileKind::Config,
        )
        .unwrap();
        let credentials =
            section("[s]\naws_access_key_id = AKIAFILE\naws_secret_access_key = file\n", "s", FileKind::Credentials)
                .unwrap();
        let merged = merge("s", config.as_ref(), credentials.as_ref()).unwrap();
        assert_eq!(merged.region.as_deref(), Some("eu-west-1"));
        match merged.credentials {
            ProfileCredentials::Keys(keys, FileKind::Credentials) => {
                assert_eq!(keys.access_key_id.expose(), "AKIAFILE")
            }
            other => panic!("{other:?}"),
        }
        // Static keys come before credential_process.
        let merged = merge("s", config.as_ref(), None).unwrap();
        assert!(matches!(merged.credentials, ProfileCredentials::Keys(_, FileKind::Config)), "{merged:?}");
        // Without keys: the command.
        let config = section("[profile s]\ncredential_process = /bin/creds\n", "s", FileKind::Config).unwrap();
        let region = section("[s]\nregion = us-west-1\n", "s", FileKind::Credentials).unwrap();
        let merged = merge("s", config.as_ref(), region.as_ref()).unwrap();
        assert_eq!(merged.region.as_deref(), Some("us-west-1"));
        assert!(matches!(merged.credentials, ProfileCredentials::Process(_, FileKind::Config)), "{merged:?}");
    }

    #[test]
    fn malformed_profiles_are_refused_without_echoing_values() {
        let long =
            format!("[default]\naws_access_key_id = A\naws_secret_access_key = very{}\n", "x".repeat(MAX_VALUE_BYTES));
        let long_command = format!("[default]\ncredential_process = very{}\n", "x".repeat(MAX_VALUE_BYTES));
        for text in [
            "[default\naws_access_key_id = very-secret\n",
            "[default]\nvery-secret\n",
            "[default]\naws_access_key_id = A\n",
            "[default]\naws_secret_access_key = very-secret\n",
            "[default]\naws_access_key_id = A\naws_secret_access_key = very\u{7}secret\n",
            "[default]\naws_access_key_id = A\naws_secret_access_key = very secret\n",
            "[default]\naws_access_key_id = A\naws_secret_access_key = véry-secret\n",
            "[default]\ncredential_process = very\u{1b}secret\n",
            "[default]\nregion = very/secret\n",
            "[default]\nrole_arn = very-secret\nsource_profile = x\n",
            "[default]\nrole_arn = arn:aws:iam::1:role/very-secret\n",
            "[default]\nrole_arn = arn:aws:iam::1:role/very\nsource_profile = a\ncredential_source = Environment\n",
            "[default]\nrole_arn = arn:aws:iam::1:role/very\ncredential_source = very-secret\n",
            "[default]\nrole_arn = arn:aws:iam::1:role/very\ncredential_source = environment\n",
            "[default]\nrole_arn = arn:aws:iam::1:role/very\nsource_profile = a\nexternal_id = very secret\n",
            "[default]\nrole_arn = arn:aws:iam::1:role/very\nsource_profile = a\nrole_session_name = very/secret\n",
            "[default]\nrole_arn = arn:aws:iam::1:role/very\nsource_profile = a\nduration_seconds = 60\n",
            "[default]\nrole_arn = arn:aws:iam::1:role/very\nsource_profile = a\nduration_seconds = very\n",
            "[default]\nsource_profile = very-secret\naws_access_key_id = A\naws_secret_access_key = B\n",
            "[default]\nrole_arn = arn:aws:iam::1:role/very\nweb_identity_token_file = /very/secret\n",
            "[default]\nsso_session = very-secret\naws_access_key_id = A\naws_secret_access_key = B\n",
            "[default]\nweb_identity_token_file = /very/secret\n",
            &long,
            &long_command,
        ] {
            let error = from_credentials(text, "default").err().unwrap_or_else(|| panic!("{text:?}"));
            assert!(!error.contains("very") && error.len() < 300, "{error}");
        }
        // Other profiles' mistakes do not matter.
        assert!(matches!(
            from_credentials(
                "[other]\njunk\nrole_arn = x\n[default]\naws_access_key_id=A\naws_secret_access_key=B\n",
                "default"
            ),
            Ok(Some(Profile { credentials: ProfileCredentials::Keys(..), .. }))
        ));
    }

    #[test]
    fn role_profiles_name_their_source_and_options() {
        let text = "\
[profile chained]
role_arn = arn:aws:iam::123456789012:role/scalelite
source_profile = base
role_session_name = scalelite-bbb1
external_id = tenant:42/x
duration_seconds = 3600
aws_access_key_id = AKIAOWN
aws_secret_access_key = own
[profile instance]
role_arn = arn:aws:iam::123456789012:role/other
credential_source = Ec2InstanceMetadata
region = eu-west-1
[profile task]
role_arn = arn:aws:iam::123456789012:role/other
credential_source = EcsContainer
[profile env]
role_arn = arn:aws:iam::123456789012:role/other
credential_source = Environment
";
        let chained = from_config(text, "chained").unwrap().unwrap();
        assert_eq!(
            chained.role,
            Some(RoleProfile {
                role_arn: "arn:aws:iam::123456789012:role/scalelite".into(),
                source: RoleSource::Profile("base".into()),
                session_name: Some("scalelite-bbb1".into()),
                external_id: Some("tenant:42/x".into()),
                duration_seconds: Some(3600),
            })
        );
        // Its own keys are kept (a source_profile naming itself uses them).
        assert!(matches!(chained.credentials, ProfileCredentials::Keys(..)), "{chained:?}");
        let source = |name: &str| from_config(text, name).unwrap().unwrap().role.unwrap().source;
        assert_eq!(source("instance"), RoleSource::Ec2InstanceMetadata);
        assert_eq!(source("task"), RoleSource::EcsContainer);
        assert_eq!(source("env"), RoleSource::Environment);
        let instance = from_config(text, "instance").unwrap().unwrap();
        assert_eq!((instance.region.as_deref(), instance.credentials), (Some("eu-west-1"), ProfileCredentials::None));
        // The credentials file may hold role_arn too, and adds to the config file's.
        let config = section(text, "instance", FileKind::Config).unwrap();
        let credentials =
            section("[instance]\nrole_arn = arn:aws:iam::1:role/file\n", "instance", FileKind::Credentials).unwrap();
        let merged = merge("instance", config.as_ref(), credentials.as_ref()).unwrap();
        assert_eq!(merged.role.unwrap().role_arn, "arn:aws:iam::1:role/file");
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let alphabet = b"[]=#; \t\r\nprofile defaultaws_access_key_id\xc3\xa9";
        for _ in 0..2000 {
            let mut text = Vec::new();
            for _ in 0..(seed % 200) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let text = String::from_utf8_lossy(&text);
            let _ = from_credentials(&text, "default");
            let _ = from_config(&text, "default");
        }
    }
}
