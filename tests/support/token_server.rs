//! A Docker token server on 127.0.0.1 for auth tests. It checks Basic credentials and grants
//! the requested scopes that the test allows. Its JWTs are signed with a leaf key whose
//! certificate (`x5c`) is signed by a root certificate that the registry trusts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair};
use serde_json::{json, Value};

pub const ISSUER: &str = "test-token-issuer";
pub const SERVICE: &str = "test-registry";
pub const USER: &str = "alice";
pub const PASSWORD: &str = "token-password";

/// Signing material: a root CA, written as the registry's `rootcertbundle`, and a leaf key
/// certified by it.
pub struct Keys {
    leaf_key: KeyPair,
    leaf_der: Vec<u8>,
    pub bundle_path: PathBuf,
}

fn params(name: &str, ca: bool) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, name);
    params.distinguished_name = subject;
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    params
}

impl Keys {
    /// Generates the keys and writes the root certificate to `dir/root.pem`.
    pub fn generate(dir: &Path) -> Keys {
        let root_key = KeyPair::generate().unwrap();
        let root = params("test token root", true).self_signed(&root_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let issuer = Issuer::new(params("test token root", true), &root_key);
        let leaf = params("test token signer", false).signed_by(&leaf_key, &issuer).unwrap();

        let bundle_path = dir.join("root.pem");
        std::fs::write(&bundle_path, root.pem()).unwrap();
        Keys { leaf_der: leaf.der().to_vec(), leaf_key, bundle_path }
    }

    /// Signs `claims` with the leaf key, the leaf certificate in `x5c`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.x5c = Some(vec![base64::engine::general_purpose::STANDARD.encode(&self.leaf_der)]);
        let key = EncodingKey::from_ec_der(&self.leaf_key.serialize_der());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    /// Signs a token for the registry's issuer and service that expires `lifetime_secs` from now
    /// (negative for an expired token) and grants `access`: `(type, name, actions)`.
    pub fn token(&self, access: &[(&str, &str, &[&str])], lifetime_secs: i64) -> String {
        let now = unix_now();
        let access: Vec<Value> =
            access.iter().map(|(kind, name, actions)| json!({ "type": kind, "name": name, "actions": actions })).collect();
        self.sign(&json!({
            "iss": ISSUER,
            "sub": USER,
            "aud": SERVICE,
            "iat": now,
            "nbf": now - 5,
            "exp": now + lifetime_secs,
            "access": access,
        }))
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The grants the token server may give: `(type, name, actions)`. For each requested scope, a
/// token grants the requested actions that these allow.
pub type Grants = Arc<Mutex<Vec<(String, String, Vec<String>)>>>;

struct ServerState {
    keys: Arc<Keys>,
    grants: Grants,
}

/// A running token server.
pub struct TokenServer {
    pub addr: SocketAddr,
    pub keys: Arc<Keys>,
    pub grants: Grants,
    task: tokio::task::JoinHandle<()>,
}

impl TokenServer {
    /// Starts the server on an ephemeral loopback port with no grants.
    pub async fn start(dir: &Path) -> TokenServer {
        let keys = Arc::new(Keys::generate(dir));
        let grants: Grants = Arc::default();
        let state = Arc::new(ServerState { keys: keys.clone(), grants: grants.clone() });
        let app = Router::new().route("/token", get(issue)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TokenServer { addr, keys, grants, task }
    }

    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Allows `actions` on `name` of `kind` to the test user.
    pub fn grant(&self, kind: &str, name: &str, actions: &[&str]) {
        let actions = actions.iter().map(|action| action.to_string()).collect();
        self.grants.lock().unwrap().push((kind.to_owned(), name.to_owned(), actions));
    }

    /// Returns the registry's `auth` section that trusts this server.
    pub fn auth_yaml(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.realm(),
            self.keys.bundle_path.display()
        )
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn basic_user(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// `GET /token?service=&scope=`: the Docker token endpoint.
async fn issue(State(state): State<Arc<ServerState>>, Query(query): Query<Vec<(String, String)>>, headers: HeaderMap) -> Response {
    if basic_user(&headers) != Some((USER.to_owned(), PASSWORD.to_owned())) {
        return (StatusCode::UNAUTHORIZED, "wrong or missing credentials").into_response();
    }
    if !query.iter().any(|(key, value)| key == "service" && value == SERVICE) {
        return (StatusCode::BAD_REQUEST, "unknown service").into_response();
    }

    let grants = state.grants.lock().unwrap().clone();
    let mut access = Vec::new();
    let scopes = query.iter().filter(|(key, _)| key == "scope").flat_map(|(_, value)| value.split(' '));
    for scope in scopes {
        let Some((kind, rest)) = scope.split_once(':') else { continue };
        let Some((name, actions)) = rest.rsplit_once(':') else { continue };
        let granted: Vec<&str> = actions
            .split(',')
            .filter(|action| grants.iter().any(|(k, n, allowed)| k == kind && n == name && allowed.iter().any(|a| a == action)))
            .collect();
        if !granted.is_empty() {
            access.push((kind.to_owned(), name.to_owned(), granted.iter().map(|a| a.to_string()).collect::<Vec<_>>()));
        }
    }

    let borrowed: Vec<(&str, &str, Vec<&str>)> =
        access.iter().map(|(kind, name, actions)| (kind.as_str(), name.as_str(), actions.iter().map(String::as_str).collect())).collect();
    let borrowed: Vec<(&str, &str, &[&str])> = borrowed.iter().map(|(kind, name, actions)| (*kind, *name, actions.as_slice())).collect();
    let token = state.keys.token(&borrowed, 300);
    let body = json!({ "token": token, "access_token": token, "expires_in": 300 }).to_string();
    ([("content-type", "application/json")], body).into_response()
}
