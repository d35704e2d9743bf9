//! The wire protocol: newline-delimited JSON-RPC 2.0 over the daemon's Unix socket.
//!
//! One request per line, one response per line, in order, on a connection that may carry many
//! requests. Methods: `ast.symbols` (`{"uri": …, "persist": true}`: the result is exactly the
//! CLI's success document), `ast.index` (`{"jobs": n}`: the `ast index` summary),
//! `cache.stats` (the `ast cache stats` document) and `shutdown`. A failure of the command
//! itself is a JSON-RPC error with code [`APP_ERROR`] and `data: {"error_code", "message"}`,
//! the CLI's error envelope, so a client can print what a local run prints.
//!
//! Results are written by serializing the command's own struct into the line (never through a
//! `serde_json::Value`, whose map would sort the keys): key order is the contract's order.

use serde::Serialize;
use serde_json::{Value, json};

/// JSON-RPC: the line is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: unknown method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC: bad parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// The command failed; `data` carries the CLI's `error_code` and `message`.
pub const APP_ERROR: i64 = -32000;
/// The daemon refuses the connection (wrong peer uid, too many connections, stopping).
pub const REFUSED: i64 = -32001;
/// The request names a segment this daemon does not serve (a socket that leads to another
/// segment's daemon): the client answers locally.
pub const WRONG_SEGMENT: i64 = -32002;
/// The connection is closed: a request line took longer than the request timeout to arrive,
/// or was longer than [`MAX_LINE`]. The error line is the last thing written.
pub const REQUEST_TIMEOUT: i64 = -32003;
/// Longest request line accepted, in bytes.
pub const MAX_LINE: usize = 64 * 1024;

/// The methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `ast.symbols`.
    Symbols,
    /// `ast.index`.
    Index,
    /// `cache.stats`.
    Stats,
    /// `shutdown`.
    Shutdown,
    /// `daemon.status`: who answers (pid, segment), without touching the cache.
    Status,
}

impl Method {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Symbols => "ast.symbols",
            Method::Index => "ast.index",
            Method::Stats => "cache.stats",
            Method::Shutdown => "shutdown",
            Method::Status => "daemon.status",
        }
    }

    fn parse(s: &str) -> Option<Method> {
        [
            Method::Symbols,
            Method::Index,
            Method::Stats,
            Method::Shutdown,
            Method::Status,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The id to echo (`None`: a notification, no response is sent).
    pub id: Option<Value>,
    /// What to do.
    pub method: Method,
    /// `params`, an object (empty when absent).
    pub params: Value,
}

/// A request that cannot be served: the JSON-RPC code, a message, and the id if one was read.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRequest {
    /// The id, when the request had a usable one (else `null` is echoed).
    pub id: Value,
    /// JSON-RPC error code.
    pub code: i64,
    /// What was wrong.
    pub message: String,
}

/// Parse one request line (without its newline).
pub fn parse_request(line: &[u8]) -> Result<Request, BadRequest> {
    let bad = |id: Value, code, message: &str| BadRequest {
        id,
        code,
        message: message.to_string(),
    };
    let v: Value = serde_json::from_slice(line)
        .map_err(|e| bad(Value::Null, PARSE_ERROR, &format!("not JSON: {e}")))?;
    let Value::Object(obj) = v else {
        return Err(bad(
            Value::Null,
            INVALID_REQUEST,
            "a request is a JSON object",
        ));
    };
    let id = obj.get("id").cloned();
    let echo = id.clone().unwrap_or(Value::Null);
    // A number id must be a whole number that survives the round trip: a float or an integer
    // beyond 64 bits would be echoed as a different number, and the client could not match it.
    let whole = |n: &serde_json::Number| n.is_i64() || n.is_u64();
    if !matches!(&id, None | Some(Value::Null | Value::String(_)))
        && !matches!(&id, Some(Value::Number(n)) if whole(n))
    {
        return Err(bad(
            Value::Null,
            INVALID_REQUEST,
            "id must be a whole number (64 bits), a string or null",
        ));
    }
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(bad(echo, INVALID_REQUEST, "jsonrpc must be \"2.0\""));
    }
    let name = obj
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(echo.clone(), INVALID_REQUEST, "method must be a string"))?;
    let method = Method::parse(name).ok_or_else(|| {
        bad(
            echo.clone(),
            METHOD_NOT_FOUND,
            &format!("unknown method {name:?}"),
        )
    })?;
    let params = match obj.get("params") {
        None => json!({}),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => return Err(bad(echo, INVALID_PARAMS, "params must be an object")),
    };
    Ok(Request { id, method, params })
}

/// A success line: `{"jsonrpc":"2.0","id":…,"result":<result>}` and a newline, the result
/// serialized straight from its struct (key order kept).
pub fn ok_line<T: Serialize + ?Sized>(id: &Value, result: &T) -> String {
    match serde_json::to_string(result) {
        Ok(r) => format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{},\"result\":{r}}}\n",
            serde_json::to_string(id).unwrap_or_else(|_| "null".into())
        ),
        Err(e) => error_line(id, APP_ERROR, &format!("serialization failed: {e}"), None),
    }
}

/// An error line; `app` is the CLI's `(error_code, message)` for [`APP_ERROR`].
pub fn error_line(id: &Value, code: i64, message: &str, app: Option<(&str, &str)>) -> String {
    let mut err = json!({"code": code, "message": message});
    if let Some((error_code, msg)) = app {
        err["data"] = json!({"error_code": error_code, "message": msg});
    }
    let line = json!({"jsonrpc": "2.0", "id": id, "error": err});
    format!("{line}\n")
}

/// A request line from a client.
pub fn request_line(id: u64, method: Method, params: &Value) -> String {
    let line = json!({"jsonrpc": "2.0", "id": id, "method": method.as_str(), "params": params});
    format!("{line}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_malformed_ones_get_the_jsonrpc_codes() {
        let r = parse_request(
            br#"{"jsonrpc":"2.0","id":7,"method":"ast.symbols","params":{"uri":"x"}}"#,
        )
        .unwrap();
        assert_eq!((r.id, r.method), (Some(json!(7)), Method::Symbols));
        let code = |l: &[u8]| parse_request(l).unwrap_err().code;
        assert_eq!(code(b"{not json"), PARSE_ERROR);
        assert_eq!(code(b"[1]"), INVALID_REQUEST);
        assert_eq!(
            code(br#"{"jsonrpc":"1.0","id":1,"method":"shutdown"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":1,"method":"rm -rf"}"#),
            METHOD_NOT_FOUND
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":1,"method":"shutdown","params":[]}"#),
            INVALID_PARAMS
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":{},"method":"shutdown"}"#),
            INVALID_REQUEST
        );
        // Ids that would not come back unchanged are refused rather than echoed altered.
        for id in ["99999999999999999999999", "1.5", "-1e3"] {
            let line = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"shutdown"}}"#);
            assert_eq!(code(line.as_bytes()), INVALID_REQUEST, "{id}");
        }
        let r = parse_request(br#"{"jsonrpc":"2.0","id":-3,"method":"daemon.status"}"#).unwrap();
        assert_eq!((r.id, r.method), (Some(json!(-3)), Method::Status));
    }

    #[test]
    fn result_lines_keep_the_struct_key_order() {
        #[derive(Serialize)]
        struct Out {
            zeta: u8,
            alpha: u8,
        }
        let line = ok_line(&json!("a"), &Out { zeta: 1, alpha: 2 });
        assert_eq!(
            line,
            "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":{\"zeta\":1,\"alpha\":2}}\n"
        );
        let e = error_line(&json!(1), APP_ERROR, "m", Some(("FILE_NOT_FOUND", "no")));
        let v: Value = serde_json::from_str(&e).unwrap();
        assert_eq!(v["error"]["data"]["error_code"], "FILE_NOT_FOUND");
    }
}
