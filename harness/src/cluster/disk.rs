//! Disk faults on a running cluster: what the nodes' lazyfs volumes
//! serve (fsync errors, a full disk, slow I/O) and the torn power cut.
use super::{Cluster, ClusterError, DiskFaults};

impl Cluster {
    /// Serve `faults` from the node's lazyfs volume from now on; while any
    /// is in force, the node stopping on its own is the right answer (a
    /// correct system stops on a disk it cannot trust), not a crash.
    pub fn set_disk_faults(&self, node: usize, faults: &DiskFaults) -> Result<(), ClusterError> {
        self.check(node)?;
        self.local_volumes("a disk fault")?.set_faults(node, faults)?;
        self.inner.supervisor.set_failing(node, *faults != DiskFaults::default());
        Ok(())
    }

    /// Serve no fault from the node's volume any more, but keep its own
    /// exit expected until [`Cluster::expect_no_disk_exit`]: a node that
    /// met an error just before the lift may exit just after it.
    pub fn lift_disk_faults(&self, node: usize) -> Result<(), ClusterError> {
        self.check(node)?;
        self.local_volumes("a disk fault")?.set_faults(node, &DiskFaults::default())
    }

    /// From now on the node's own exit is a crash again.
    pub fn expect_no_disk_exit(&self, node: usize) {
        self.inner.supervisor.set_failing(node, false);
    }

    /// Power loss that tears the last page the node wrote but did not
    /// sync (`tear_bytes` of it reach the disk). The node stays down until
    /// `restart`.
    pub async fn power_cut_torn(&self, node: usize, tear_bytes: u32) -> Result<(), ClusterError> {
        self.check(node)?;
        let volumes = self.local_volumes("a torn power cut")?;
        self.kill(node).await?;
        volumes.cut_torn(node, tear_bytes).await
    }
}
