//! The master, found through Sentinel. Every sentinel is asked at once, each within the
//! timeout, and the first to name a server that confirms it is the master wins. Asking them in
//! turn, as the client library does, lets one sentinel that accepts connections and never
//! answers (frozen, swapping) spend every operation's whole time budget: the store would stay
//! down for as long as that sentinel stayed frozen, whatever the others knew.

use super::*;

pub(super) struct Sentinels {
    pub sentinels: Vec<ConnectionInfo>,
    pub master_name: String,
    /// The master's credentials and database (from the optional Redis URL).
    pub master_settings: ::redis::RedisConnectionInfo,
    /// `Some(insecure)` when the master speaks TLS.
    pub master_tls: Option<bool>,
    pub config: AsyncConnectionConfig,
}

impl Sentinels {
    /// The master's client and a connection to it.
    pub async fn master(&self) -> RedisResult<(Client, MultiplexedConnection)> {
        let asks = self.sentinels.iter().map(|s| Box::pin(self.ask(s)));
        futures::future::select_ok(asks)
            .await
            .map(|(found, _)| found)
    }

    async fn ask(&self, sentinel: &ConnectionInfo) -> RedisResult<(Client, MultiplexedConnection)> {
        let mut conn = Client::open(sentinel.clone())?
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let named: Option<(String, u16)> = ::redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.master_name)
            .query_async(&mut conn)
            .await?;
        let Some((host, port)) = named else {
            return Err(no_master("the sentinel knows no such master"));
        };
        let master = Client::open(self.master_info(host, port)?)?;
        let mut conn = master
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        // A sentinel that has not seen the failover yet names the old master, now a replica.
        match ::redis::cmd("ROLE").query_async(&mut conn).await? {
            ::redis::Role::Primary { .. } => Ok((master, conn)),
            _ => Err(no_master("the named server is not a master")),
        }
    }

    fn master_info(&self, host: String, port: u16) -> RedisResult<ConnectionInfo> {
        let addr = match self.master_tls {
            None => ConnectionAddr::Tcp(host, port),
            Some(insecure) => ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                tls_params: None,
            },
        };
        addr.into_connection_info()
            .map(|info| info.set_redis_settings(self.master_settings.clone()))
    }
}

fn no_master(why: &'static str) -> RedisError {
    RedisError::from((::redis::ErrorKind::Io, "Sentinel", why.to_string()))
}
