//! Creates an admin API key directly in the keys table, with the caller's own AWS
//! credentials: the way to get the first key of a deployed stack (there is no open
//! bootstrap route). The token goes to stdout (last line) and, with `--out`, to a file
//! readable only by its owner.
//!
//!   create-admin-key --table <ApiKeysTable name> [--name NAME] [--out FILE]

use std::io::Write;

use aloft_keys::domain::{ApiKey, NewKey};
use aloft_keys::store::KeyStore;
use aloft_shared::auth::{NewApiKey, Scope, Scopes};
use aloft_shared::{aws, clock};

const USAGE: &str =
    "usage: create-admin-key --table <ApiKeysTable name> [--name NAME] [--out FILE]";

struct Args {
    table: String,
    name: String,
    out: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut table = None;
    let mut name = "admin".to_owned();
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--table" => table = Some(value()?),
            "--name" => name = value()?,
            "--out" => out = Some(value()?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let table = table.ok_or(format!("--table is required\n{USAGE}"))?;
    Ok(Args { table, name, out })
}

fn write_private(path: &str, token: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{token}")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let sdk = aws::operator_sdk_config().await;
    let store = KeyStore::new(aws::dynamodb(&sdk), args.table.clone());
    let minted = NewApiKey::generate();
    let new = NewKey {
        name: args.name,
        scopes: Scopes::new([Scope::Admin]),
        // The bootstrap key must always get in, to fix whatever else is wrong.
        rate_limit: None,
    };
    let key = ApiKey::new(
        minted.key_id.clone(),
        &new,
        clock::rfc3339(clock::now()),
        "bootstrap".into(),
    );
    store
        .create(&key, &minted.token_hash)
        .await
        .map_err(|e| anyhow::anyhow!("could not write the key to table {}: {e}", args.table))?;
    if let Some(path) = &args.out {
        write_private(path, &minted.token).map_err(|e| {
            anyhow::anyhow!("key {} created, but writing {path} failed: {e}", key.id)
        })?;
    }
    eprintln!(
        "created admin key {} ({}); its secret is shown once:",
        key.id, key.name
    );
    println!("{}", minted.token);
    Ok(())
}
