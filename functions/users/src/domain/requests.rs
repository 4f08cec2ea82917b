//! Create and patch bodies as sent, and their validation into a [`NewUser`] or a
//! [`UserPatch`] with every bad field named at once.

use aloft_shared::FieldError;
pub use aloft_shared::strict::PatchField;
use aloft_shared::strict::some;
use serde::Deserialize;

use super::{Email, Role, UserName};

/// `POST /users` body as sent. Strings are validated in [`NewUser::parse`] so every bad
/// field is reported at once; a field left out is "required" there, a field sent as
/// `null` (or any other wrong type) is a 422 naming it here.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    #[serde(default, deserialize_with = "some")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub role: Option<String>,
}

/// `PATCH /users/{id}` body as sent. [`PatchField`] keeps `null` apart from absent so
/// [`UserPatch::parse`] refuses it (422 naming the field, beside every other bad field),
/// as the spec says; any other wrong type fails here, also a 422 naming the field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default)]
    pub email: PatchField<String>,
    #[serde(default)]
    pub name: PatchField<String>,
    #[serde(default)]
    pub role: PatchField<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub email: Email,
    pub name: UserName,
    pub role: Role,
}

fn required<T>(
    field: &str,
    value: Option<&str>,
    parse: fn(&str) -> Result<T, String>,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    match value {
        None => {
            errors.push(FieldError::new(field, "is required"));
            None
        }
        Some(v) => parse(v)
            .map_err(|m| errors.push(FieldError::new(field, m)))
            .ok(),
    }
}

impl NewUser {
    pub fn parse(req: &CreateUserRequest) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let email = required("email", req.email.as_deref(), Email::parse, &mut errors);
        let name = required("name", req.name.as_deref(), UserName::parse, &mut errors);
        let role = required("role", req.role.as_deref(), Role::parse, &mut errors);
        match (email, name, role) {
            (Some(email), Some(name), Some(role)) if errors.is_empty() => {
                Ok(Self { email, name, role })
            }
            _ => Err(errors),
        }
    }
}

/// A validated partial update with at least one field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    pub email: Option<Email>,
    pub name: Option<UserName>,
    pub role: Option<Role>,
}

impl UserPatch {
    pub fn parse(req: &UpdateUserRequest) -> Result<Self, Vec<FieldError>> {
        fn field<T>(
            name: &str,
            f: &PatchField<String>,
            parse: fn(&str) -> Result<T, String>,
            errors: &mut Vec<FieldError>,
        ) -> Option<T> {
            match f {
                PatchField::Absent => None,
                PatchField::Null => {
                    errors.push(FieldError::new(
                        name,
                        "cannot be null; omit it to leave it unchanged",
                    ));
                    None
                }
                PatchField::Value(v) => parse(v)
                    .map_err(|m| errors.push(FieldError::new(name, m)))
                    .ok(),
            }
        }
        let mut errors = Vec::new();
        let patch = Self {
            email: field("email", &req.email, Email::parse, &mut errors),
            name: field("name", &req.name, UserName::parse, &mut errors),
            role: field("role", &req.role, Role::parse, &mut errors),
        };
        let all_absent = matches!(
            (&req.email, &req.name, &req.role),
            (PatchField::Absent, PatchField::Absent, PatchField::Absent)
        );
        if all_absent {
            errors.push(FieldError::new(
                "body",
                "must set at least one of email, name, role",
            ));
        }
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_request_reports_every_bad_field() {
        let req = CreateUserRequest {
            email: Some("nope".into()),
            name: None,
            role: Some("boss".into()),
        };
        let errors = NewUser::parse(&req).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "name", "role"]);
        assert_eq!(errors[1].message, "is required");
    }

    #[test]
    fn patch_needs_a_field_and_refuses_null() {
        let empty = UserPatch::parse(&UpdateUserRequest::default()).unwrap_err();
        assert_eq!(empty[0].field, "body");
        let req: UpdateUserRequest = serde_json::from_str(r#"{"name": null}"#).unwrap();
        assert_eq!(UserPatch::parse(&req).unwrap_err()[0].field, "name");
        let req: UpdateUserRequest = serde_json::from_str(r#"{"role": "viewer"}"#).unwrap();
        assert_eq!(UserPatch::parse(&req).unwrap().role, Some(Role::Viewer));
    }
}

/// Bodies as `ApiJson` reads them (an object, each field of its documented type) and then
/// as the domain validates them: (body, status, first field named). Users have no number
/// fields, so no whole-number float case.
#[cfg(test)]
mod strict_bodies {
    use super::*;
    use aloft_shared::extract::parse_json;
    use aloft_shared::strict::Object;

    fn answer<T: serde::de::DeserializeOwned>(
        body: &str,
        validate: fn(&T) -> Result<(), Vec<FieldError>>,
    ) -> (u16, Option<String>) {
        match parse_json::<Object<T>>(body.as_bytes()) {
            Err(p) => (p.status, p.errors.first().map(|e| e.field.clone())),
            Ok(Object(req)) => match validate(&req) {
                Ok(()) => (200, None),
                Err(errors) => (422, errors.first().map(|e| e.field.clone())),
            },
        }
    }

    #[test]
    fn create_bodies_are_the_documented_shape() {
        let cases: &[(&str, u16, Option<&str>)] = &[
            (
                r#"{"email": "a@b.co", "name": "Ada", "role": "member"}"#,
                200,
                None,
            ),
            (r#"{}"#, 422, Some("email")),
            (r#"[null, null, null]"#, 422, Some("body")),
            (r#"["a@b.co", "Ada", "member"]"#, 422, Some("body")),
            (r#"null"#, 422, Some("body")),
            (
                r#"{"email": null, "name": "Ada", "role": "member"}"#,
                422,
                Some("email"),
            ),
            (r#"{"email": "a@b.co", "name": null}"#, 422, Some("name")),
            (r#"{"name": ["Ada"]}"#, 422, Some("name")),
            (r#"{"role": 1}"#, 422, Some("role")),
            (r#"{"id": "x"}"#, 400, Some("id")),
        ];
        for (body, status, field) in cases {
            let got = answer::<CreateUserRequest>(body, |r| NewUser::parse(r).map(drop));
            assert_eq!(got, (*status, field.map(str::to_owned)), "{body}");
        }
    }

    #[test]
    fn patch_bodies_are_the_documented_shape() {
        let cases: &[(&str, u16, Option<&str>)] = &[
            (r#"{"role": "viewer"}"#, 200, None),
            (r#"{}"#, 422, Some("body")),
            (r#"[null]"#, 422, Some("body")),
            // The spec refuses `null` here: omit a field to leave it unchanged.
            (r#"{"role": null}"#, 422, Some("role")),
            (r#"{"name": {"first": "Ada"}}"#, 422, Some("name")),
            (r#"{"email": 1.0}"#, 422, Some("email")),
        ];
        for (body, status, field) in cases {
            let got = answer::<UpdateUserRequest>(body, |r| UserPatch::parse(r).map(drop));
            assert_eq!(got, (*status, field.map(str::to_owned)), "{body}");
        }
    }
}
