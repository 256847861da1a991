//! How a client proves itself to etcd and checks etcd's identity: TLS (a CA, a client
//! certificate) and etcd's user/password authentication. One [`EtcdSecurity`] is shared
//! by the `dns-server`'s feed and the controller-manager's skydns writer, with the flags
//! etcdctl, CoreDNS's etcd plugin (`tls`, `credentials`) and ExternalDNS
//! (`ETCD_CA_FILE`, ...) offer.
//!
//! The files are read at every connect, not once at start, so that a rotated
//! certificate is picked up by the next reconnect without a restart.

use std::path::PathBuf;

use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtcdSecurity {
    /// PEM CA bundle that signs etcd's serving certificate; without it, the system's
    /// roots (TLS is used whenever an endpoint is `https://`).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and its key, for etcd's `--client-cert-auth`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The name to check etcd's certificate against, when it is not the endpoint's host.
    pub server_name: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecurityError {
    #[error("--etcd-cert and --etcd-key go together: give both or neither")]
    HalfIdentity,
    #[error("--etcd-password needs --etcd-username")]
    PasswordWithoutUser,
    #[error("TLS options are given but no etcd endpoint is https://: {0}")]
    TlsWithoutHttps(String),
    #[error("reading {path}: {message}")]
    Read { path: String, message: String },
}

impl EtcdSecurity {
    /// Whether any TLS option is set.
    pub fn tls(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.server_name.is_some()
    }

    /// Checks what can be checked before connecting: at start, so that a typo is an
    /// error on the command line rather than a reconnect loop.
    pub fn validate(&self, endpoints: &[String]) -> Result<(), SecurityError> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(SecurityError::HalfIdentity);
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(SecurityError::PasswordWithoutUser);
        }
        if self.tls() && !endpoints.iter().any(|e| e.starts_with("https://")) {
            return Err(SecurityError::TlsWithoutHttps(endpoints.join(",")));
        }
        for path in [&self.ca_file, &self.cert_file, &self.key_file]
            .into_iter()
            .flatten()
        {
            read(path)?;
        }
        Ok(())
    }

    /// `opts` with TLS and credentials added (the files read now).
    pub fn apply(
        &self,
        mut opts: ConnectOptions,
        endpoints: &[String],
    ) -> Result<ConnectOptions, SecurityError> {
        if self.tls() || endpoints.iter().any(|e| e.starts_with("https://")) {
            let mut tls = TlsOptions::new();
            match &self.ca_file {
                Some(ca) => tls = tls.ca_certificate(Certificate::from_pem(read(ca)?)),
                None => tls = tls.with_native_roots(),
            }
            if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            if let Some(name) = &self.server_name {
                tls = tls.domain_name(name.clone());
            }
            opts = opts.with_tls(tls);
        }
        if let Some(user) = &self.username {
            opts = opts.with_user(user.clone(), self.password.clone().unwrap_or_default());
        }
        Ok(opts)
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|e| SecurityError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(e: &str) -> Vec<String> {
        vec![e.to_string()]
    }

    #[test]
    fn half_an_identity_or_a_password_alone_is_refused() {
        let s = EtcdSecurity {
            cert_file: Some("/c".into()),
            ..Default::default()
        };
        assert_eq!(
            s.validate(&endpoints("https://e:2379")),
            Err(SecurityError::HalfIdentity)
        );
        let s = EtcdSecurity {
            password: Some("p".into()),
            ..Default::default()
        };
        assert_eq!(
            s.validate(&endpoints("http://e:2379")),
            Err(SecurityError::PasswordWithoutUser)
        );
    }

    #[test]
    fn tls_options_need_an_https_endpoint_and_readable_files() {
        let s = EtcdSecurity {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        assert!(matches!(
            s.validate(&endpoints("http://e:2379")),
            Err(SecurityError::TlsWithoutHttps(_))
        ));
        let err = s.validate(&endpoints("https://e:2379")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        assert_eq!(
            EtcdSecurity::default().validate(&endpoints("http://e:2379")),
            Ok(())
        );
    }
}
