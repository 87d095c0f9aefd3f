// SPDX-License-Identifier: GPL-2.0

//! Which container and Kubernetes pod a network namespace belongs to, from
//! `/proc/<pid>/ns/net` and `/proc/<pid>/cgroup`.
//!
//! A namespace is named by the first process (lowest pid) whose
//! `ns/net` link is `net:[INUM]`; its cgroup path gives the container id
//! (64 hex digits, as Docker, containerd, CRI-O and podman name containers)
//! and, under `kubepods`, the pod UID. In a Kubernetes pod every container
//! shares one namespace, so the id is the one of the pod's first process,
//! usually its sandbox ("pause") container; the pod UID is the useful label
//! there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What is known of a namespace's owner; empty strings when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The container id (64 lowercase hex digits), or empty.
    pub container_id: String,
    /// The Kubernetes pod UID (with dashes), or empty.
    pub pod_uid: String,
}

/// Whether `s` is a container id: 64 lowercase hex digits.
fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `s` is a UUID in its dashed form (8-4-4-4-12 hex digits).
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The container id named by one cgroup path component, if any:
/// `<64hex>` (cgroupfs driver: `/docker/<id>`, `/kubepods/.../pod<uid>/<id>`)
/// or `<runtime>-<64hex>.scope` (systemd driver: `docker-`,
/// `cri-containerd-`, `crio-`, `libpod-`).
fn container_of_component(c: &str) -> Option<&str> {
    let c = c.strip_suffix(".scope").unwrap_or(c);
    let id = c.rsplit_once('-').map_or(c, |(_, id)| id);
    // `crio-conmon-<id>.scope` holds CRI-O's monitor, not the container.
    (is_container_id(id) && !c.contains("conmon-")).then_some(id)
}

/// The pod UID named by one cgroup path component, if any: `pod<uid>`
/// (cgroupfs driver) or `kubepods-<class>-pod<uid_with_underscores>.slice`
/// (systemd driver).
fn pod_of_component(c: &str) -> Option<String> {
    let c = c.strip_suffix(".slice").unwrap_or(c);
    let uid = match c.rfind("-pod") {
        Some(at) => &c[at + 4..],
        None => c.strip_prefix("pod")?,
    };
    let uid = uid.replace('_', "-");
    is_uuid(&uid).then(|| uid.to_ascii_lowercase())
}

/// The container id and pod UID a cgroup path names (either may be empty).
///
/// The container id is the last component that names one (podman's
/// `libpod-<id>.scope/container` nests one more level); the pod UID is
/// looked for only in a path with a `kubepods` component.
pub fn identity_of_cgroup_path(path: &str) -> Identity {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let container_id = parts
        .iter()
        .rev()
        .find_map(|c| container_of_component(c))
        .unwrap_or_default()
        .to_owned();
    let kube = parts.iter().any(|c| c.starts_with("kubepods"));
    let pod_uid = if kube {
        parts
            .iter()
            .find_map(|c| pod_of_component(c))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Identity {
        container_id,
        pod_uid,
    }
}

/// The identity a `/proc/<pid>/cgroup` text names: that of the first line
/// (cgroup v2's `0::/path` or a v1 hierarchy's `N:controllers:/path`) whose
/// path names a container or a pod.
pub fn identity_of_cgroup_file(text: &str) -> Identity {
    text.lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .map(identity_of_cgroup_path)
        .find(|id| !id.container_id.is_empty() || !id.pod_uid.is_empty())
        .unwrap_or_default()
}

/// The inode number in a `ns/net` link's target, `net:[INUM]`.
pub fn netns_of_link(target: &str) -> Option<u32> {
    target
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The identities of the namespaces `wanted`, from the processes under
/// `proc` (a `/proc`): for each, the one of its lowest-pid process whose
/// cgroup file could be read. Processes that vanish or cannot be looked at
/// are skipped; a namespace no process is found in is left out.
pub fn identify(proc: &Path, wanted: &BTreeSet<u32>) -> BTreeMap<u32, Identity> {
    let mut found = BTreeMap::new();
    if wanted.is_empty() {
        return found;
    }
    let Ok(dir) = std::fs::read_dir(proc) else {
        return found;
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let base = proc.join(pid.to_string());
        let Some(inum) = std::fs::read_link(base.join("ns/net"))
            .ok()
            .and_then(|t| netns_of_link(t.to_str()?))
        else {
            continue;
        };
        if !wanted.contains(&inum) || found.contains_key(&inum) {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(base.join("cgroup")) {
            found.insert(inum, identity_of_cgroup_file(&text));
            if found.len() == wanted.len() {
                break;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UID: &str = "5f3a1c2e-7b9d-4e21-a0f4-9c8b7a6d5e4f";

    fn id(path: &str) -> (String, String) {
        let i = identity_of_cgroup_path(path);
        (i.container_id, i.pod_uid)
    }

    #[test]
    fn docker_systemd_and_cgroupfs() {
        assert_eq!(
            id(&format!("/system.slice/docker-{ID}.scope")),
            (ID.into(), "".into())
        );
        assert_eq!(id(&format!("/docker/{ID}")), (ID.into(), "".into()));
    }

    #[test]
    fn kubepods_systemd_containerd_and_crio() {
        let uid = UID.replace('-', "_");
        let p = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/cri-containerd-{ID}.scope"
        );
        assert_eq!(id(&p), (ID.into(), UID.into()));
        let p = format!("/kubepods.slice/kubepods-pod{uid}.slice/crio-{ID}.scope");
        assert_eq!(id(&p), (ID.into(), UID.into()));
    }

    #[test]
    fn kubepods_cgroupfs() {
        let p = format!("/kubepods/burstable/pod{UID}/{ID}");
        assert_eq!(id(&p), (ID.into(), UID.into()));
        let p = format!("/kubepods/pod{UID}/{ID}");
        assert_eq!(id(&p), (ID.into(), UID.into()));
    }

    #[test]
    fn kubepods_pod_slice_without_container() {
        let uid = UID.replace('-', "_");
        let p =
            format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid}.slice");
        assert_eq!(id(&p), ("".into(), UID.into()));
    }

    #[test]
    fn podman() {
        let p =
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope");
        assert_eq!(id(&p), (ID.into(), "".into()));
        let p = format!("/machine.slice/libpod-{ID}.scope/container");
        assert_eq!(id(&p), (ID.into(), "".into()));
    }

    #[test]
    fn relative_path_in_a_cgroup_namespace() {
        let uid = UID.replace('-', "_");
        let p = format!("/../../kubepods-burstable-pod{uid}.slice/cri-containerd-{ID}.scope");
        assert_eq!(id(&p), (ID.into(), UID.into()));
    }

    #[test]
    fn no_container() {
        for p in [
            "/",
            "/init.scope",
            "/system.slice/sshd.service",
            "/user.slice/user-1000.slice/session-3.scope",
            // 63 hex digits, uppercase, a conmon scope, "pod" outside kubepods.
            "/docker/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
            "/docker/0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF",
            "/machine.slice/crio-conmon-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope",
            "/pod5f3a1c2e-7b9d-4e21-a0f4-9c8b7a6d5e4f",
        ] {
            assert_eq!(id(p), ("".into(), "".into()), "{p}");
        }
    }

    #[test]
    fn cgroup_file_v2_and_v1() {
        let v2 = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(identity_of_cgroup_file(&v2).container_id, ID);
        let v1 = format!(
            "12:pids:/\n11:memory:/kubepods/burstable/pod{UID}/{ID}\n1:name=systemd:/kubepods/burstable/pod{UID}/{ID}\n0::/\n"
        );
        let i = identity_of_cgroup_file(&v1);
        assert_eq!((i.container_id.as_str(), i.pod_uid.as_str()), (ID, UID));
        assert_eq!(
            identity_of_cgroup_file("0::/init.scope\n"),
            Identity::default()
        );
    }

    #[test]
    fn netns_links() {
        assert_eq!(netns_of_link("net:[4026532211]"), Some(4026532211));
        assert_eq!(netns_of_link("net:[x]"), None);
        assert_eq!(netns_of_link("mnt:[4026532211]"), None);
        assert_eq!(netns_of_link("net:4026532211"), None);
    }

    #[test]
    fn identify_scans_a_fake_proc() {
        let dir = crate::testutil::TempDir::new("identify");
        let proc = dir.path();
        let uid = UID.replace('-', "_");
        let pod = format!("0::/kubepods.slice/kubepods-pod{uid}.slice/cri-containerd-{ID}.scope\n");
        crate::testutil::fake_process(proc, 1, 4026531840, "0::/init.scope\n");
        crate::testutil::fake_process(proc, 700, 4026532300, &pod);
        // A later process of the same namespace does not override the first.
        crate::testutil::fake_process(proc, 900, 4026532300, "0::/\n");
        // A process whose cgroup vanished is skipped, not fatal.
        crate::testutil::fake_process(proc, 50, 4026532400, "");
        std::fs::remove_file(proc.join("50/cgroup")).unwrap();
        // Not a pid.
        std::fs::create_dir_all(proc.join("sys")).unwrap();
        let wanted = BTreeSet::from([4026531840, 4026532300, 4026532400, 4026532999]);
        let got = identify(proc, &wanted);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[&4026531840], Identity::default());
        assert_eq!(got[&4026532300].container_id, ID);
        assert_eq!(got[&4026532300].pod_uid, UID);
        assert!(identify(&proc.join("missing"), &wanted).is_empty());
    }
}
