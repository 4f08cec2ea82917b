//! Users end to end, over HTTP through the local API Gateway, authorizer and the
//! users function's own binary, against DynamoDB and SQS on moto.

use std::collections::HashSet;
use std::time::Duration;

use aloft_e2e::{Stack, problem_type, send, send_full, unique, unique_email};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn create(stack: &Stack, email: &str, name: &str, role: &str) -> Value {
    let (status, body) = send(
        stack
            .admin(Method::POST, "/users")
            .json(&json!({"email": email, "name": name, "role": role})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test]
async fn a_user_lives_is_changed_and_dies_with_a_full_audit_trail() {
    let stack = Stack::connect().await;
    let email = unique_email();
    let (status, headers, user) = send_full(stack.admin(Method::POST, "/users").json(
        &json!({"email": format!("  {email} "), "name": " Ada Lovelace ", "role": "member"}),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let id = user["id"].as_str().unwrap().to_owned();
    assert_eq!(headers["location"], format!("/users/{id}"));
    assert_eq!(user["email"], email, "email is trimmed");
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["version"], 1);
    assert!(user["created_at"].is_string() && user["updated_at"].is_string());

    let (status, fetched) = send(stack.admin(Method::GET, &format!("/users/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, user);

    let (status, headers, updated) = send_full(
        stack
            .admin(Method::PATCH, &format!("/users/{id}"))
            .header("If-Match", "\"1\"")
            .json(&json!({"role": "admin", "name": "Ada King"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(headers["etag"], "\"2\"");
    assert_eq!(updated["role"], "admin");
    assert_eq!(updated["name"], "Ada King");
    assert_eq!(updated["email"], email);

    let (status, _) = send(stack.admin(Method::DELETE, &format!("/users/{id}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = send(stack.admin(Method::GET, &format!("/users/{id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem_type(&body), "user-not-found");

    // The trail outlives the user, newest first, each entry naming who and what.
    let (status, audit) = send(stack.admin(Method::GET, &format!("/users/{id}/audit"))).await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let entries = audit["items"].as_array().unwrap();
    let actions: Vec<_> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["deleted", "updated", "created"]);
    let admin_id = &stack.admin_key["aloft_".len().."aloft_".len() + 32];
    assert!(entries.iter().all(|e| e["actor"] == admin_id), "{audit}");
    assert_eq!(
        entries[1]["changes"]["role"],
        json!({"from": "member", "to": "admin"})
    );
    assert_eq!(
        entries[1]["changes"]["name"],
        json!({"from": "Ada Lovelace", "to": "Ada King"})
    );
    assert!(
        entries[1]["changes"].get("email").is_none(),
        "unchanged fields are not recorded"
    );
    assert_eq!(entries[2]["changes"]["email"]["to"], email);
    let times: Vec<_> = entries.iter().map(|e| e["at"].as_str().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );

    // Deleting freed the email.
    create(&stack, &email, "Ada again", "viewer").await;
}

#[tokio::test]
async fn an_email_belongs_to_one_user_whatever_its_case() {
    let stack = Stack::connect().await;
    let email = unique_email();
    create(&stack, &email, "First", "member").await;
    for taken in [
        email.clone(),
        email.to_uppercase(),
        format!(" {} ", email.replace("e2e", "E2E")),
    ] {
        let (status, body) = send(
            stack
                .admin(Method::POST, "/users")
                .json(&json!({"email": taken, "name": "Second", "role": "member"})),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{taken}: {body}");
        assert_eq!(problem_type(&body), "email-taken");
        assert_eq!(body["errors"][0]["field"], "email");
    }
    assert_eq!(stack.users_with_email(&email).await, 1);

    // Changing another user's email to it is refused the same way.
    let other = create(&stack, &unique_email(), "Other", "viewer").await;
    let (status, body) = send(
        stack
            .admin(
                Method::PATCH,
                &format!("/users/{}", other["id"].as_str().unwrap()),
            )
            .header("If-Match", "\"1\"")
            .json(&json!({"email": email.to_uppercase()})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test]
async fn fifty_concurrent_creates_with_one_email_make_one_user() {
    let stack = Stack::connect().await;
    let email = unique_email();
    let attempts = (0..50).map(|i| {
        let stack = stack.clone();
        let email = if i % 2 == 0 {
            email.clone()
        } else {
            email.to_uppercase()
        };
        tokio::spawn(async move {
            send(
                stack
                    .admin(Method::POST, "/users")
                    .json(&json!({"email": email, "name": format!("Racer {i}"), "role": "member"})),
            )
            .await
        })
    });
    let results = futures::future::join_all(attempts).await;
    let statuses: Vec<StatusCode> = results.into_iter().map(|r| r.unwrap().0).collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 49), "{statuses:?}");
    assert_eq!(stack.users_with_email(&email).await, 1);
}

#[tokio::test]
async fn updates_need_the_current_version() {
    let stack = Stack::connect().await;
    let user = create(&stack, &unique_email(), "Versioned", "member").await;
    let path = format!("/users/{}", user["id"].as_str().unwrap());

    let (status, body) = send(
        stack
            .admin(Method::PATCH, &path)
            .json(&json!({"name": "No precondition"})),
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_REQUIRED, "{body}");
    assert_eq!(problem_type(&body), "precondition-required");

    let (status, _) = send(
        stack
            .admin(Method::PATCH, &path)
            .header("If-Match", "\"1\"")
            .json(&json!({"name": "First edit"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // A second writer still holding version 1 loses, and changes nothing.
    let (status, body) = send(
        stack
            .admin(Method::PATCH, &path)
            .header("If-Match", "\"1\"")
            .json(&json!({"name": "Lost edit"})),
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    assert_eq!(problem_type(&body), "stale-version");
    let (_, now) = send(stack.admin(Method::GET, &path)).await;
    assert_eq!(now["name"], "First edit");
    assert_eq!(now["version"], 2);

    // `If-Match: *` asks for any current version (RFC 9110): the edit applies.
    let (status, body) = send(
        stack
            .admin(Method::PATCH, &path)
            .header("If-Match", "*")
            .json(&json!({"name": "Any version"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["name"], &body["version"]),
        (&json!("Any version"), &json!(3))
    );
}

/// Follows `next_cursor` to the end and returns every item.
async fn all_pages(stack: &Stack, query: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/users?{query}&limit=2");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = send(stack.admin(Method::GET, &path)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        pages += 1;
        items.extend(body["items"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (items, pages),
        }
        assert!(pages < 1000, "pagination does not end");
    }
}

fn ids(items: &[Value]) -> HashSet<String> {
    items
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn search_by_email_role_and_name_prefix_pages_through_everything() {
    let stack = Stack::connect().await;
    let prefix = unique("Zq");
    let mut mine = HashSet::new();
    for i in 0..5 {
        let u = create(
            &stack,
            &unique_email(),
            &format!("{prefix} Person {i}"),
            "viewer",
        )
        .await;
        mine.insert(u["id"].as_str().unwrap().to_owned());
    }

    let (found, pages) = all_pages(&stack, &format!("name_prefix={}", prefix.to_lowercase())).await;
    assert_eq!(
        ids(&found),
        mine,
        "name prefix search is case-insensitive and complete"
    );
    assert!(pages >= 3, "5 results at limit 2 span 3 pages, got {pages}");
    let names: Vec<_> = found.iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert!(
        names.windows(2).all(|w| w[0] <= w[1]),
        "ordered by name: {names:?}"
    );

    let (found, _) = all_pages(&stack, "role=viewer").await;
    assert!(mine.is_subset(&ids(&found)));
    assert!(found.iter().all(|u| u["role"] == "viewer"));

    let one = found
        .iter()
        .find(|u| mine.contains(u["id"].as_str().unwrap()))
        .unwrap();
    let email = one["email"].as_str().unwrap().to_uppercase();
    let (status, body) = send(stack.admin(Method::GET, &format!("/users?email={email}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert_eq!(body["items"][0]["id"], one["id"]);

    // Filters combine: a user is found when every filter given matches.
    let p = prefix.to_lowercase();
    let (found, _) = all_pages(&stack, &format!("name_prefix={p}&role=viewer")).await;
    assert_eq!(ids(&found), mine, "name prefix and role");
    let (found, _) = all_pages(&stack, &format!("name_prefix={p}&role=admin")).await;
    assert!(found.is_empty(), "none of them is an admin: {found:?}");
    for (role, expected) in [("viewer", 1), ("admin", 0)] {
        let query = format!("/users?email={email}&role={role}&name_prefix={p}");
        let (status, body) = send(stack.admin(Method::GET, &query)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["items"].as_array().unwrap().len(), expected, "{query}");
    }
}

#[tokio::test]
async fn forged_or_foreign_cursors_are_refused() {
    let stack = Stack::connect().await;
    let prefix = unique("Cur");
    for i in 0..3 {
        create(&stack, &unique_email(), &format!("{prefix} {i}"), "member").await;
    }
    let (_, body) =
        send(stack.admin(Method::GET, &format!("/users?name_prefix={prefix}&limit=1"))).await;
    let cursor = body["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();

    let mut tampered = cursor.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for (bad, why) in [
        (tampered.as_str(), "tampered"),
        ("garbage", "garbled"),
        (cursor.as_str(), "another query's"),
    ] {
        let query = if why == "another query's" {
            "role=member"
        } else {
            &format!("name_prefix={prefix}")
        };
        let (status, body) =
            send(stack.admin(Method::GET, &format!("/users?{query}&cursor={bad}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {body}");
        assert_eq!(problem_type(&body), "invalid-cursor", "{why}");
    }
}

#[tokio::test]
async fn each_created_user_is_announced_exactly_once_and_rejected_ones_never() {
    let stack = Stack::connect().await;
    let mut created = HashSet::new();
    let mut rejected = Vec::new();
    for _ in 0..5 {
        let email = unique_email();
        let u = create(&stack, &email, "Announced", "member").await;
        created.insert(u["id"].as_str().unwrap().to_owned());
        // The same email again: a 409, which must announce nothing.
        let (status, _) = send(
            stack
                .admin(Method::POST, "/users")
                .json(&json!({"email": email, "name": "Dup", "role": "member"})),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        rejected.push(email);
    }
    let invalid = unique_email();
    let (status, _) = send(
        stack
            .admin(Method::POST, "/users")
            .json(&json!({"email": invalid, "name": "", "role": "member"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let ours = created.clone();
    let expected = created.len();
    let events = stack
        .collect_at_least(
            move |e| {
                e["type"] == "user.created"
                    && (ours.contains(e["data"]["id"].as_str().unwrap_or_default())
                        || e["data"]["email"] == invalid
                        || e["data"]["name"] == "Dup")
            },
            expected,
            Duration::from_secs(3),
        )
        .await;
    let announced: Vec<_> = events
        .iter()
        .map(|e| e["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        announced.len(),
        created.len(),
        "exactly once each: {announced:?}"
    );
    assert_eq!(announced.iter().cloned().collect::<HashSet<_>>(), created);
    for e in &events {
        assert_eq!(e["source"], "aloft.users");
        assert!(e["id"].is_string() && e["occurred_at"].is_string(), "{e}");
    }
}

#[tokio::test]
async fn every_bad_input_gets_its_4xx_and_writes_nothing() {
    let stack = Stack::connect().await;
    let email = unique_email();
    let valid = json!({"email": email, "name": "Valid Name", "role": "member"}).to_string();
    let huge = json!({"email": email, "name": "x".repeat(70 * 1024), "role": "member"}).to_string();
    // (what, content type, body, expected status, problem type, field named)
    type BadCase<'a> = (
        &'a str,
        Option<&'a str>,
        String,
        StatusCode,
        &'a str,
        Option<&'a str>,
    );
    let cases: Vec<BadCase> = vec![
        (
            "malformed JSON",
            Some("application/json"),
            "{\"email\": ".into(),
            StatusCode::BAD_REQUEST,
            "malformed-json",
            None,
        ),
        (
            "wrong content type",
            Some("text/plain"),
            valid.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            None,
        ),
        (
            "no content type",
            None,
            valid.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            None,
        ),
        (
            "unknown field",
            Some("application/json"),
            json!({"email": email, "name": "N", "role": "member", "admin": true}).to_string(),
            StatusCode::BAD_REQUEST,
            "unknown-field",
            None,
        ),
        (
            "over 64 KiB",
            Some("application/json"),
            huge,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            None,
        ),
        (
            "bad email",
            Some("application/json"),
            json!({"email": "not-an-email", "name": "N", "role": "member"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            Some("email"),
        ),
        (
            "empty name",
            Some("application/json"),
            json!({"email": email, "name": "   ", "role": "member"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            Some("name"),
        ),
        (
            "name too long",
            Some("application/json"),
            json!({"email": email, "name": "n".repeat(201), "role": "member"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            Some("name"),
        ),
        (
            "unknown role",
            Some("application/json"),
            json!({"email": email, "name": "N", "role": "owner"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            Some("role"),
        ),
        (
            "missing role",
            Some("application/json"),
            json!({"email": email, "name": "N"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            Some("role"),
        ),
        (
            "wrong type",
            Some("application/json"),
            json!({"email": email, "name": 42, "role": "member"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            Some("name"),
        ),
    ];
    for (what, content_type, body, want, slug, field) in cases {
        let mut req = stack.admin(Method::POST, "/users").body(body);
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        let (status, headers, problem) = send_full(req).await;
        assert_eq!(status, want, "{what}: {problem}");
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{what}"
        );
        assert_eq!(problem_type(&problem), slug, "{what}: {problem}");
        if let Some(field) = field {
            let fields: Vec<_> = problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert!(fields.contains(&field), "{what}: {problem}");
        }
    }
    // Every error at once, each named.
    let (status, problem) = send(
        stack
            .admin(Method::POST, "/users")
            .json(&json!({"email": "x", "name": "", "role": "god"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<_> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "name", "role"]);
    assert_eq!(
        stack.users_with_email(&email).await,
        0,
        "no bad request wrote a user"
    );

    // Bad updates leave the user as it was.
    let user = create(&stack, &email, "Valid Name", "member").await;
    let path = format!("/users/{}", user["id"].as_str().unwrap());
    for (what, body, want) in [
        (
            "null field",
            json!({"name": null}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("empty patch", json!({}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            "bad role",
            json!({"role": "root"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown field",
            json!({"id": "other"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, problem) = send(
            stack
                .admin(Method::PATCH, &path)
                .header("If-Match", "\"1\"")
                .json(&body),
        )
        .await;
        assert_eq!(status, want, "{what}: {problem}");
    }
    let (status, problem) = send(
        stack
            .admin(Method::PATCH, &path)
            .header("If-Match", "yesterday")
            .json(&json!({"name": "N"})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad If-Match: {problem}"
    );
    let (_, now) = send(stack.admin(Method::GET, &path)).await;
    assert_eq!(now, user, "nothing changed");

    for query in [
        "limit=0",
        "limit=101",
        "limit=ten",
        "role=owner",
        "colour=blue",
        "limit=5",
    ] {
        let (status, problem) = send(stack.admin(Method::GET, &format!("/users?{query}"))).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {status} {problem}"
        );
    }
    let (status, problem) = send(stack.admin(Method::GET, "/users/no-such-user/audit")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
}
