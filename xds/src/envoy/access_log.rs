//! Access logs: Envoy's stdout logger on every HTTP connection manager and
//! TCP proxy, one JSON object (or one text line) per request or connection,
//! with the fields the TenantGateway names — from a fixed vocabulary, never a
//! raw Envoy format string.

use super::any_named;
use crate::model::{AccessLog, AccessLogField, AccessLogFormat};
use envoy_types::pb::envoy::config::accesslog::v3::{access_log, AccessLog as EnvoyAccessLog};
use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource};
use envoy_types::pb::google::protobuf::{value, Value};

/// The Envoy command operator of a field.
fn operator(f: AccessLogField) -> &'static str {
    match f {
        AccessLogField::Time => "%START_TIME%",
        AccessLogField::RequestId => "%REQ(X-REQUEST-ID)%",
        AccessLogField::Client => "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
        AccessLogField::Method => "%REQ(:METHOD)%",
        AccessLogField::Authority => "%REQ(:AUTHORITY)%",
        AccessLogField::Path => "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
        AccessLogField::Protocol => "%PROTOCOL%",
        AccessLogField::Status => "%RESPONSE_CODE%",
        AccessLogField::ResponseFlags => "%RESPONSE_FLAGS%",
        AccessLogField::DurationMs => "%DURATION%",
        AccessLogField::BytesReceived => "%BYTES_RECEIVED%",
        AccessLogField::BytesSent => "%BYTES_SENT%",
        AccessLogField::UpstreamHost => "%UPSTREAM_HOST%",
        AccessLogField::UpstreamCluster => "%UPSTREAM_CLUSTER%",
        AccessLogField::Route => "%ROUTE_NAME%",
        AccessLogField::UserAgent => "%REQ(USER-AGENT)%",
        AccessLogField::XForwardedFor => "%REQ(X-FORWARDED-FOR)%",
        AccessLogField::Sni => "%REQUESTED_SERVER_NAME%",
    }
}

// Wire-compatible mirrors of `StdoutAccessLog`, `SubstitutionFormatString`
// and `google.protobuf.Struct`, with a list in place of Struct's `HashMap`:
// prost encodes a map in random order, and the same spec must give the same
// bytes. (A map's entries on the wire are a repeated message; their order
// does not change the meaning.)

#[derive(Clone, PartialEq, prost::Message)]
struct StdoutAccessLog {
    #[prost(message, optional, tag = "1")]
    log_format: Option<FormatString>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct FormatString {
    #[prost(message, optional, tag = "2")]
    json_format: Option<OrderedStruct>,
    #[prost(message, optional, tag = "5")]
    text_format_source: Option<DataSource>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OrderedStruct {
    #[prost(message, repeated, tag = "1")]
    fields: Vec<StructEntry>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StructEntry {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Value>,
}

const STDOUT_TYPE: &str = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";

/// The access loggers of a connection manager or TCP proxy (none when off).
pub(super) fn access_logs(log: &AccessLog) -> Vec<EnvoyAccessLog> {
    let format = match log.format {
        AccessLogFormat::Off => return vec![],
        AccessLogFormat::Json => FormatString {
            json_format: Some(OrderedStruct {
                // Keys in the order given (a field named twice once).
                fields: log
                    .fields
                    .iter()
                    .enumerate()
                    .filter(|(i, f)| !log.fields[..*i].contains(f))
                    .map(|(_, f)| StructEntry {
                        key: f.name().to_string(),
                        value: Some(Value {
                            kind: Some(value::Kind::StringValue(operator(*f).to_string())),
                        }),
                    })
                    .collect(),
            }),
            text_format_source: None,
        },
        AccessLogFormat::Text => {
            let line: Vec<&str> = log.fields.iter().map(|f| operator(*f)).collect();
            FormatString {
                json_format: None,
                text_format_source: Some(DataSource {
                    specifier: Some(data_source::Specifier::InlineString(format!(
                        "{}\n",
                        line.join(" ")
                    ))),
                    ..Default::default()
                }),
            }
        }
    };
    let config = StdoutAccessLog {
        log_format: Some(format),
    };
    vec![EnvoyAccessLog {
        name: "envoy.access_loggers.stdout".into(),
        filter: None,
        config_type: Some(access_log::ConfigType::TypedConfig(any_named(
            STDOUT_TYPE,
            &config,
        ))),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::extensions::access_loggers::stream::v3::{
        stdout_access_log, StdoutAccessLog as RealStdoutAccessLog,
    };
    use prost::Message;

    fn decoded(log: &AccessLog) -> RealStdoutAccessLog {
        let logs = access_logs(log);
        assert_eq!(logs.len(), 1);
        let Some(access_log::ConfigType::TypedConfig(any)) = &logs[0].config_type else {
            panic!("no typed config")
        };
        assert_eq!(any.type_url, format!("type.googleapis.com/{STDOUT_TYPE}"));
        RealStdoutAccessLog::decode(any.value.as_slice()).expect("a real StdoutAccessLog")
    }

    #[test]
    fn json_logs_every_default_field_in_order_and_encodes_the_same_every_time() {
        let log = AccessLog::default();
        let Some(stdout_access_log::AccessLogFormat::LogFormat(f)) =
            decoded(&log).access_log_format
        else {
            panic!("no format")
        };
        use envoy_types::pb::envoy::config::core::v3::substitution_format_string::Format;
        let Some(Format::JsonFormat(s)) = f.format else {
            panic!("not json")
        };
        let mut keys: Vec<&str> = s.fields.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want: Vec<&str> = AccessLogField::DEFAULT.iter().map(|f| f.name()).collect();
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(
            s.fields["route"].kind,
            Some(value::Kind::StringValue("%ROUTE_NAME%".into()))
        );
        // The bytes are the fields in spec order, every time (no map order).
        let bytes = |l: &AccessLog| access_logs(l)[0].encode_to_vec();
        let first = bytes(&log);
        for _ in 0..20 {
            assert_eq!(bytes(&log), first);
        }
        let reversed = AccessLog {
            fields: AccessLogField::DEFAULT.iter().rev().copied().collect(),
            ..AccessLog::default()
        };
        assert_ne!(bytes(&reversed), first, "order is the spec's");
    }

    #[test]
    fn text_is_the_fields_operators_in_order_and_off_is_no_logger() {
        let log = AccessLog {
            format: AccessLogFormat::Text,
            fields: vec![AccessLogField::Status, AccessLogField::Route],
        };
        let Some(stdout_access_log::AccessLogFormat::LogFormat(f)) =
            decoded(&log).access_log_format
        else {
            panic!("no format")
        };
        use envoy_types::pb::envoy::config::core::v3::substitution_format_string::Format;
        let Some(Format::TextFormatSource(DataSource {
            specifier: Some(data_source::Specifier::InlineString(line)),
            ..
        })) = f.format
        else {
            panic!("no text format")
        };
        assert_eq!(line, "%RESPONSE_CODE% %ROUTE_NAME%\n");
        let off = AccessLog {
            format: AccessLogFormat::Off,
            fields: vec![],
        };
        assert!(access_logs(&off).is_empty());
    }
}
