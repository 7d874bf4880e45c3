//! What a script sees: the request (and in the response phase the response) as a Lua object
//! with a few fields and header methods. The objects are 'static types whose Lua metatable is
//! built once per state, lent to one call only (Lua scopes): a script cannot keep a request
//! past its phase.

use crate::user::Identity;
use mlua::{UserData, UserDataFields, UserDataMethods, Value};
use pingora::http::{RequestHeader, ResponseHeader};
use std::net::IpAddr;

/// Facts about the request that are not in its header.
pub struct Context {
    pub client_ip: Option<IpAddr>,
    pub route: String,
    pub identity: Option<Identity>,
}

pub struct RequestCall {
    pub header: RequestHeader,
    pub context: Context,
}

pub struct ResponseCall {
    pub request: RequestHeader,
    pub header: ResponseHeader,
    pub context: Context,
}

trait Exchange {
    fn request(&self) -> &RequestHeader;
    fn context(&self) -> &Context;
}

impl Exchange for RequestCall {
    fn request(&self) -> &RequestHeader {
        &self.header
    }
    fn context(&self) -> &Context {
        &self.context
    }
}

impl Exchange for ResponseCall {
    fn request(&self) -> &RequestHeader {
        &self.request
    }
    fn context(&self) -> &Context {
        &self.context
    }
}

/// `method`, `path`, `query`, `host`, `client_ip`, `route`, `user`, `groups`, `email`.
fn request_fields<T: Exchange, F: UserDataFields<T>>(fields: &mut F) {
    fields.add_field_method_get("method", |_, t| Ok(t.request().method.to_string()));
    fields.add_field_method_get("path", |_, t| Ok(t.request().uri.path().to_string()));
    fields.add_field_method_get("query", |_, t| {
        Ok(t.request().uri.query().map(str::to_string))
    });
    fields.add_field_method_get("host", |_, t| {
        Ok(crate::request::request_host(t.request()).map(str::to_string))
    });
    fields.add_field_method_get("client_ip", |_, t| {
        Ok(t.context().client_ip.map(|ip| ip.to_string()))
    });
    fields.add_field_method_get("route", |_, t| Ok(t.context().route.clone()));
    fields.add_field_method_get("user", |_, t| {
        Ok(t.context().identity.as_ref().map(|i| i.user.clone()))
    });
    fields.add_field_method_get("email", |_, t| {
        Ok(t.context().identity.as_ref().and_then(|i| i.email.clone()))
    });
    fields.add_field_method_get("groups", |lua, t| {
        let groups = t
            .context()
            .identity
            .as_ref()
            .map_or(&[][..], |i| &i.groups[..]);
        lua.create_sequence_from(groups.iter().map(String::as_str))
    });
}

/// The first value of a header, as bytes (header values need not be UTF-8).
fn header_value(lua: &mlua::Lua, headers: &http::HeaderMap, name: &str) -> mlua::Result<Value> {
    match headers.get(name) {
        Some(v) => Ok(Value::String(lua.create_string(v.as_bytes())?)),
        None => Ok(Value::Nil),
    }
}

fn bad_header(e: impl std::fmt::Display) -> mlua::Error {
    mlua::Error::runtime(format!("invalid header: {e}"))
}

impl UserData for RequestCall {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        request_fields(fields);
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("header", |lua, this, name: String| {
            header_value(lua, &this.header.headers, &name)
        });
        methods.add_method_mut("set_header", |_, this, (name, value): (String, String)| {
            this.header.insert_header(name, value).map_err(bad_header)
        });
        methods.add_method_mut("remove_header", |_, this, name: String| {
            this.header.remove_header(&name);
            Ok(())
        });
    }
}

impl UserData for ResponseCall {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        request_fields(fields);
        fields.add_field_method_get("status", |_, t| Ok(t.header.status.as_u16()));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("header", |lua, this, name: String| {
            header_value(lua, &this.header.headers, &name)
        });
        methods.add_method("request_header", |lua, this, name: String| {
            header_value(lua, &this.request.headers, &name)
        });
        methods.add_method_mut("set_header", |_, this, (name, value): (String, String)| {
            this.header.insert_header(name, value).map_err(bad_header)
        });
        methods.add_method_mut("remove_header", |_, this, name: String| {
            this.header.remove_header(&name);
            Ok(())
        });
    }
}

/// Stand-ins left in the session while a call holds its headers; never sent anywhere.
pub fn placeholder_request() -> RequestHeader {
    RequestHeader::build_no_case(http::Method::GET, b"/", Some(0))
        .unwrap_or_else(|_| unreachable!("a static request line is valid"))
}

pub fn placeholder_response() -> ResponseHeader {
    ResponseHeader::build_no_case(200, Some(0))
        .unwrap_or_else(|_| unreachable!("200 is a valid status"))
}
