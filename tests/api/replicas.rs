//! Several replicas as real processes: leader election and failover.
