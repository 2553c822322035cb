//! The broker names of the contract (docs/CONTRACT.md, "Topology"): the work queues, the exchanges,
//! and the retry-tier and dead-letter queues of each, under the `PASARELA_NAMESPACE` prefix so that tests
//! (and tenants sharing a broker) never see each other's queues.

use std::time::Duration;

use crate::contract::retry::format_duration;

/// A work queue of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    /// `otp.send`: send a one-time password.
    OtpSend,
    /// `otp.verify`: check a code (RPC or event).
    OtpVerify,
    /// `doc.sign`: submit a PDF for signature.
    DocSign,
    /// `doc.callback`: confirm a document's state with the vendor.
    DocCallback,
    /// `vendor.call`: call a token-protected vendor service.
    VendorCall,
}

impl Queue {
    /// Every work queue, in the contract's order.
    pub const ALL: [Queue; 5] = [
        Queue::OtpSend,
        Queue::OtpVerify,
        Queue::DocSign,
        Queue::DocCallback,
        Queue::VendorCall,
    ];

    /// The queue's name, which is also its routing key on the work exchange.
    pub const fn name(self) -> &'static str {
        match self {
            Queue::OtpSend => "otp.send",
            Queue::OtpVerify => "otp.verify",
            Queue::DocSign => "doc.sign",
            Queue::DocCallback => "doc.callback",
            Queue::VendorCall => "vendor.call",
        }
    }
}

impl std::fmt::Display for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The work queues' names, in the contract's order.
pub const WORK_QUEUES: [&str; 5] = [
    Queue::OtpSend.name(),
    Queue::OtpVerify.name(),
    Queue::DocSign.name(),
    Queue::DocCallback.name(),
    Queue::VendorCall.name(),
];

/// Names of exchanges and queues under one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// Names under `namespace` (empty: no prefix).
    pub fn new(namespace: &str) -> Self {
        let prefix = if namespace.is_empty() {
            String::new()
        } else {
            format!("{namespace}.")
        };
        Self { prefix }
    }

    /// `name` with the namespace prefix.
    pub fn qualify(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The topic exchange producers publish work to (`pasarela`).
    pub fn work_exchange(&self) -> String {
        self.qualify("pasarela")
    }

    /// The topic exchange results are published to (`pasarela.events`).
    pub fn events_exchange(&self) -> String {
        self.qualify("pasarela.events")
    }

    /// A work queue, e.g. `otp.send`.
    pub fn work_queue(&self, queue: &str) -> String {
        self.qualify(queue)
    }

    /// A retry tier of a work queue, e.g. `otp.send.retry.5s`.
    pub fn tier_queue(&self, queue: &str, delay: Duration) -> String {
        self.qualify(&format!("{queue}.retry.{}", format_duration(delay)))
    }

    /// The dead-letter queue of a work queue, e.g. `otp.send.dead`.
    pub fn dead_queue(&self, queue: &str) -> String {
        self.qualify(&format!("{queue}.dead"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_the_namespace() {
        let n = Names::new("t1");
        assert_eq!(n.work_exchange(), "t1.pasarela");
        assert_eq!(n.events_exchange(), "t1.pasarela.events");
        assert_eq!(n.work_queue("otp.send"), "t1.otp.send");
        assert_eq!(
            n.tier_queue("otp.send", Duration::from_secs(120)),
            "t1.otp.send.retry.2m"
        );
        assert_eq!(n.dead_queue("otp.send"), "t1.otp.send.dead");
        let bare = Names::new("");
        assert_eq!(bare.work_queue("otp.send"), "otp.send");
        assert_eq!(
            bare.tier_queue("otp.send", Duration::from_millis(100)),
            "otp.send.retry.100ms"
        );
    }
}
