//! Key schemes more than one capability reads: the owner writes the item, others may
//! only check it exists (payments check a user in the same transaction as the payment),
//! so the scheme lives here rather than in either capability's crate.

/// The partition key of a user's item in the users table.
pub fn user_pk(id: &str) -> String {
    format!("USER#{id}")
}

/// The partition key of a service in the registry table: the service item, its instances
/// and its dependents live there. The registry writes it; the scaler reads instances.
pub fn service_pk(name: &str) -> String {
    format!("SVC#{name}")
}

/// The sort-key prefix of an instance in a service's registry partition
/// (`INST#<instance id>`).
pub const INSTANCE_SK_PREFIX: &str = "INST#";

#[cfg(test)]
mod tests {
    #[test]
    fn user_keys_carry_their_prefix() {
        assert_eq!(super::user_pk("u1"), "USER#u1");
        assert_eq!(super::service_pk("checkout"), "SVC#checkout");
    }
}
