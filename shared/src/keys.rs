//! Key schemes more than one capability reads: the owner writes the item, others may
//! only check it exists (payments check a user in the same transaction as the payment),
//! so the scheme lives here rather than in either capability's crate.

/// The partition key of a user's item in the users table.
pub fn user_pk(id: &str) -> String {
    format!("USER#{id}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn user_keys_carry_their_prefix() {
        assert_eq!(super::user_pk("u1"), "USER#u1");
    }
}
