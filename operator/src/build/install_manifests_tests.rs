//! Tests over config/: RBAC least privilege and typed parsing of every manifest.
