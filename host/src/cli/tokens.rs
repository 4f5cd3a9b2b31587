//! `ignareo tokens`: create, list and revoke scoped tokens on a running host, through its API.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::config::DEFAULT_DATA_DIR;

#[derive(Args)]
pub struct TokensArgs {
    /// The host's base URL.
    #[arg(long, env = "IGNAREO_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub url: String,
    /// An admin token; read from <data-dir>/admin-token when not given.
    #[arg(long, env = "IGNAREO_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// The host's data directory, where the generated admin token is kept.
    #[arg(long, env = "IGNAREO_DATA_DIR", default_value = DEFAULT_DATA_DIR, global = true)]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub action: TokenAction,
}

#[derive(Subcommand)]
pub enum TokenAction {
    /// Create a token and print it (it is shown once).
    Create {
        /// Who or what will use the token.
        #[arg(long)]
        name: String,
        /// admin, read or trigger; repeat for several.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// A plugin a trigger token may run (`*` for all); repeat for several.
        #[arg(long = "plugin")]
        plugins: Vec<String>,
    },
    /// List the tokens (without their secrets).
    List,
    /// Revoke a token by id: requests carrying it get 401 at once.
    Revoke { id: String },
}

pub async fn run(args: TokensArgs) -> anyhow::Result<()> {
    let token = if let Some(token) = args.token {
        token
    } else {
        let path = args.data_dir.join("admin-token");
        std::fs::read_to_string(&path)
            .with_context(|| {
                format!("no admin token: pass --token (or IGNAREO_TOKEN), or run where {} is readable", path.display())
            })?
            .trim()
            .to_owned()
    };
    let base = args.url.trim_end_matches('/');
    let client = reqwest::Client::new();
    let request = match &args.action {
        TokenAction::Create { name, scopes, plugins } => client
            .post(format!("{base}/v1/tokens"))
            .json(&json!({ "name": name, "scopes": scopes, "plugins": plugins })),
        TokenAction::List => client.get(format!("{base}/v1/tokens")),
        TokenAction::Revoke { id } => client.delete(format!("{base}/v1/tokens/{id}")),
    };
    let response =
        request.bearer_auth(token).send().await.with_context(|| format!("cannot reach the host at {base}"))?;
    let status = response.status();
    let body: Value = if status == reqwest::StatusCode::NO_CONTENT {
        Value::Null
    } else {
        response.json().await.context("the host's answer is not JSON")?
    };
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or("no message");
        bail!("the host refused ({status}): {message}");
    }
    match args.action {
        TokenAction::Create { .. } => {
            println!("{}", serde_json::to_string_pretty(&body)?);
            eprintln!("keep the token now: it is not shown again");
        }
        TokenAction::List => print_table(&body),
        TokenAction::Revoke { id } => println!("revoked {id}"),
    }
    Ok(())
}

fn print_table(body: &Value) {
    println!("{:<16}  {:<24}  {:<20}  plugins", "id", "name", "scopes");
    for token in body["tokens"].as_array().into_iter().flatten() {
        let list = |key: &str| {
            token[key]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
                .unwrap_or_default()
        };
        println!(
            "{:<16}  {:<24}  {:<20}  {}",
            token["id"].as_str().unwrap_or(""),
            token["name"].as_str().unwrap_or(""),
            list("scopes"),
            list("plugins")
        );
    }
}
