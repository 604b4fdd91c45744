//! RFC 6962 / 9162 vectors (transparency-dev/merkle `proof/verify_test.go` and
//! `rfc6962/rfc6962_test.go`), tamper probes, and cross-checks against a reference
//! recursive implementation.

use std::collections::HashMap;

use crypto::merkle::{
    chain_hash, consistency_proof, consistency_proof_with, consistency_subtrees, empty_root,
    inclusion_proof, inclusion_proof_with, inclusion_subtrees, leaf_hash, node_hash, root,
    root_subtrees, root_with, verify_consistency, verify_inclusion, CompactRange, Hash,
};

use crate::{h, h32};

const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// Tree heads of the first 1..=8 leaves.
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (1-based leaf, tree size, proof).
const INCLUSION: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        3,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        2,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// (old size, new size, proof).
const CONSISTENCY: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

const SOME_HASH: &str = "abacaba000000000000000000000000000000000000000000060061e00123456";

fn leaf_hashes() -> Vec<Hash> {
    LEAVES.iter().map(|leaf| leaf_hash(&h(leaf))).collect()
}

fn hashes(proof: &[&str]) -> Vec<Hash> {
    proof.iter().map(|node| h32(node)).collect()
}

/// MTH of RFC 9162 §2.1.1, written directly from the definition.
fn reference_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
        }
    }
}

#[test]
fn hasher_vectors() {
    let check = |got: Hash, want: &str| assert_eq!(hex::encode(got), want);
    check(
        empty_root(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    check(root(&[]), &hex::encode(empty_root()));
    check(
        leaf_hash(b""),
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    );
    check(
        leaf_hash(b"L123456"),
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56",
    );
    // Domain separation: a node is not the leaf of its children's concatenation, and
    // order matters.
    let (a, b) = (leaf_hash(b"Hello"), leaf_hash(b"World"));
    assert_ne!(node_hash(&a, &b), leaf_hash(&[a, b].concat()));
    assert_ne!(node_hash(&a, &b), node_hash(&b, &a));
}

#[test]
fn roots_of_the_eight_leaf_vector() {
    let leaves = leaf_hashes();
    for (size, want) in ROOTS.iter().enumerate().map(|(i, r)| (i + 1, *r)) {
        assert_eq!(hex::encode(root(&leaves[..size])), want, "size {size}");
        assert_eq!(hex::encode(reference_root(&leaves[..size])), want);
        let mut range = CompactRange::new();
        leaves[..size].iter().for_each(|leaf| range.append(*leaf));
        assert_eq!(
            hex::encode(range.root()),
            want,
            "compact range, size {size}"
        );
        assert_eq!(range.size(), size as u64);
    }
}

#[test]
fn inclusion_vectors_generate_and_verify() {
    let leaves = leaf_hashes();
    for (leaf, size, proof) in INCLUSION {
        let index = leaf - 1;
        let want = hashes(proof);
        let got = inclusion_proof(&leaves, index, size).unwrap();
        assert_eq!(got, want, "inclusion proof of {index} in {size}");
        let root = h32(ROOTS[size as usize - 1]);
        verify_inclusion(&leaves[index as usize], index, size, &want, &root).unwrap();
        for (desc, probe) in inclusion_probes(index, size, &want, &root, &leaves[index as usize]) {
            assert!(
                verify_inclusion(
                    &probe.leaf,
                    probe.index,
                    probe.size,
                    &probe.proof,
                    &probe.root
                )
                .is_err(),
                "inclusion {index}/{size}: accepted {desc}"
            );
        }
    }
}

struct InclusionProbe {
    leaf: Hash,
    index: u64,
    size: u64,
    proof: Vec<Hash>,
    root: Hash,
}

/// The corruptions of transparency-dev's `corruptInclusionProof`.
fn inclusion_probes(
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
    leaf: &Hash,
) -> Vec<(String, InclusionProbe)> {
    let base = || InclusionProbe {
        leaf: *leaf,
        index,
        size,
        proof: proof.to_vec(),
        root: *root,
    };
    let mut probes = vec![
        (
            "index - 1",
            InclusionProbe {
                index: index.wrapping_sub(1),
                ..base()
            },
        ),
        (
            "index + 1",
            InclusionProbe {
                index: index + 1,
                ..base()
            },
        ),
        (
            "index ^ 2",
            InclusionProbe {
                index: index ^ 2,
                ..base()
            },
        ),
        (
            "size * 2",
            InclusionProbe {
                size: size * 2,
                ..base()
            },
        ),
        (
            "size / 2",
            InclusionProbe {
                size: size / 2,
                ..base()
            },
        ),
        (
            "wrong leaf",
            InclusionProbe {
                leaf: leaf_hash(b"WrongLeaf"),
                ..base()
            },
        ),
        (
            "empty root",
            InclusionProbe {
                root: empty_root(),
                ..base()
            },
        ),
        (
            "random root",
            InclusionProbe {
                root: h32(SOME_HASH),
                ..base()
            },
        ),
        (
            "trailing zeros",
            InclusionProbe {
                proof: [proof, &[[0; 32]]].concat(),
                ..base()
            },
        ),
        (
            "trailing root",
            InclusionProbe {
                proof: [proof, &[*root]].concat(),
                ..base()
            },
        ),
        (
            "preceding zeros",
            InclusionProbe {
                proof: [&[[0; 32]], proof].concat(),
                ..base()
            },
        ),
        (
            "preceding root",
            InclusionProbe {
                proof: [&[*root], proof].concat(),
                ..base()
            },
        ),
    ]
    .into_iter()
    .map(|(desc, probe)| (desc.to_string(), probe))
    .collect::<Vec<_>>();
    for i in 0..proof.len() {
        for bit in [0u8, 3, 7] {
            let mut tampered = proof.to_vec();
            tampered[i][31 - i % 32] ^= 1 << bit;
            probes.push((
                format!("proof[{i}] bit {bit}"),
                InclusionProbe {
                    proof: tampered,
                    ..base()
                },
            ));
        }
    }
    if !proof.is_empty() {
        probes.push((
            "removed component".into(),
            InclusionProbe {
                proof: proof[..proof.len() - 1].to_vec(),
                ..base()
            },
        ));
    }
    if proof.len() > 1 {
        let inserted = [&proof[..1], &[h32(SOME_HASH)], &proof[1..]].concat();
        probes.push((
            "inserted component".into(),
            InclusionProbe {
                proof: inserted,
                ..base()
            },
        ));
    }
    probes
}

#[test]
fn consistency_vectors_generate_and_verify() {
    let leaves = leaf_hashes();
    for (old_size, new_size, proof) in CONSISTENCY {
        let want = hashes(proof);
        let got = consistency_proof(&leaves, old_size, new_size).unwrap();
        assert_eq!(got, want, "consistency proof {old_size} → {new_size}");
        let old_root = h32(ROOTS[old_size as usize - 1]);
        let new_root = h32(ROOTS[new_size as usize - 1]);
        verify_consistency(old_size, new_size, &old_root, &new_root, &want).unwrap();
        if want.is_empty() {
            continue;
        }
        for (desc, probe) in consistency_probes(old_size, new_size, &old_root, &new_root, &want) {
            assert!(
                verify_consistency(probe.0, probe.1, &probe.2, &probe.3, &probe.4).is_err(),
                "consistency {old_size} → {new_size}: accepted {desc}"
            );
        }
    }
}

type ConsistencyProbe = (u64, u64, Hash, Hash, Vec<Hash>);

/// The corruptions of transparency-dev's `corruptConsistencyProof`.
fn consistency_probes(
    m: u64,
    n: u64,
    r1: &Hash,
    r2: &Hash,
    proof: &[Hash],
) -> Vec<(String, ConsistencyProbe)> {
    let (r1, r2) = (*r1, *r2);
    let wrong = leaf_hash(b"WrongRoot");
    let p = |extra_front: &[Hash], extra_back: &[Hash]| [extra_front, proof, extra_back].concat();
    let mut probes: Vec<(String, ConsistencyProbe)> = vec![
        ("m - 1", (m - 1, n, r1, r2, p(&[], &[]))),
        ("m + 1", (m + 1, n, r1, r2, p(&[], &[]))),
        ("m ^ 2", (m ^ 2, n, r1, r2, p(&[], &[]))),
        ("n * 2", (m, n * 2, r1, r2, p(&[], &[]))),
        ("n / 2", (m, n / 2, r1, r2, p(&[], &[]))),
        ("wrong root1", (m, n, wrong, r2, p(&[], &[]))),
        ("wrong root2", (m, n, r1, wrong, p(&[], &[]))),
        ("swapped roots", (m, n, r2, r1, p(&[], &[]))),
        ("empty proof", (m, n, r1, r2, vec![])),
        ("trailing zeros", (m, n, r1, r2, p(&[], &[[0; 32]]))),
        ("trailing root1", (m, n, r1, r2, p(&[], &[r1]))),
        ("trailing root2", (m, n, r1, r2, p(&[], &[r2]))),
        ("preceding zeros", (m, n, r1, r2, p(&[[0; 32]], &[]))),
        ("preceding root1", (m, n, r1, r2, p(&[r1], &[]))),
        ("preceding root2", (m, n, r1, r2, p(&[r2], &[]))),
        ("preceding proof[0]", (m, n, r1, r2, p(&[proof[0]], &[]))),
        (
            "truncated proof",
            (m, n, r1, r2, proof[..proof.len() - 1].to_vec()),
        ),
    ]
    .into_iter()
    .map(|(desc, probe)| (desc.to_string(), probe))
    .collect();
    for i in 0..proof.len() {
        let mut tampered = proof.to_vec();
        tampered[i][0] ^= 16;
        probes.push((format!("proof[{i}] bit 4"), (m, n, r1, r2, tampered)));
    }
    probes
}

#[test]
fn trivial_consistency_cases() {
    let (a, b) = (leaf_hash(b"don't care 1"), leaf_hash(b"don't care 2"));
    let e = empty_root();
    let cases: [(u64, u64, Hash, Hash, Vec<Hash>, bool); 13] = [
        (0, 0, a, b, vec![], false),
        (1, 1, a, b, vec![], false),
        (0, 0, a, a, vec![], true),
        (0, 1, a, b, vec![], true),
        (1, 1, b, b, vec![], true),
        (1, 0, a, b, vec![], false),
        (2, 1, a, b, vec![], false),
        (1, 2, a, b, vec![], false),
        (0, 0, e, b, vec![], false),
        (1, 1, e, b, vec![], false),
        (0, 0, e, e, vec![e], false),
        (0, 1, e, e, vec![e], false),
        (1, 1, e, e, vec![e], false),
    ];
    for (m, n, r1, r2, proof, ok) in cases {
        assert_eq!(
            verify_consistency(m, n, &r1, &r2, &proof).is_ok(),
            ok,
            "consistency {m} → {n}"
        );
    }
}

#[test]
fn trivial_inclusion_cases() {
    let leaf = leaf_hash(b"data");
    verify_inclusion(&leaf, 0, 1, &[], &leaf).unwrap();
    assert!(verify_inclusion(&leaf, 0, 1, &[], &empty_root()).is_err());
    for (index, size) in [(0, 0), (1, 0), (2, 1), (1, 1)] {
        assert!(verify_inclusion(&leaf, index, size, &[], &leaf).is_err());
    }
    assert!(inclusion_proof(&[leaf], 1, 1).is_err());
    assert!(inclusion_proof(&[leaf], 0, 2).is_err());
    assert!(consistency_proof(&[leaf], 2, 1).is_err());
    assert!(consistency_proof(&[leaf], 1, 2).is_err());
}

/// Every index and every pair of sizes up to 40 leaves: generated proofs verify
/// against heads from three independent computations, and fail if any node is
/// tampered with or the proof is checked against a neighbouring size.
#[test]
fn all_small_trees_prove_and_verify() {
    let leaves: Vec<Hash> = (0u32..40).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let mut range = CompactRange::new();
    let mut roots = vec![empty_root()];
    for leaf in &leaves {
        range.append(*leaf);
        assert_eq!(
            range.root(),
            reference_root(&leaves[..range.size() as usize])
        );
        assert_eq!(range.root(), root(&leaves[..range.size() as usize]));
        roots.push(range.root());
    }
    for n in 1..=leaves.len() as u64 {
        for index in 0..n {
            let proof = inclusion_proof(&leaves, index, n).unwrap();
            let leaf = &leaves[index as usize];
            verify_inclusion(leaf, index, n, &proof, &roots[n as usize]).unwrap();
            for i in 0..proof.len() {
                let mut tampered = proof.clone();
                tampered[i][5] ^= 0x40;
                assert!(verify_inclusion(leaf, index, n, &tampered, &roots[n as usize]).is_err());
            }
            if let Some(next_root) = roots.get(n as usize + 1) {
                assert!(verify_inclusion(leaf, index, n + 1, &proof, next_root).is_err());
            }
        }
        for m in 0..=n {
            let proof = consistency_proof(&leaves, m, n).unwrap();
            let (r1, r2) = (&roots[m as usize], &roots[n as usize]);
            verify_consistency(m, n, r1, r2, &proof).unwrap();
            for i in 0..proof.len() {
                let mut tampered = proof.clone();
                tampered[i][0] ^= 1;
                assert!(
                    verify_consistency(m, n, r1, r2, &tampered).is_err(),
                    "{m} → {n}"
                );
            }
            if m > 0 && m < n {
                let r1_next = &roots[m as usize + 1];
                assert!(verify_consistency(m + 1, n, r1_next, r2, &proof).is_err());
            }
        }
    }
}

/// The subtrees `append_with` reports completed are the roots of their leaf ranges,
/// and from them (plus leaves) every inclusion proof comes out as from all leaves;
/// a subtree it lacks makes the proof `None`, never a wrong one.
#[test]
fn proofs_from_completed_subtrees_equal_proofs_from_all_leaves() {
    let (leaves, nodes) = completed_subtrees(70);
    // Every perfect subtree of 70 leaves: 70 leaves, then 35 + 17 + 8 + 4 + 2 + 1.
    assert_eq!(nodes.len(), 70 + 67);
    let known = |start: u64, level: u32| nodes.get(&(start, level)).copied();
    for n in 1..=leaves.len() as u64 {
        for index in 0..n {
            let mut known = known;
            let proof = inclusion_proof_with(index, n, &mut known).unwrap();
            assert_eq!(
                proof,
                inclusion_proof(&leaves, index, n).unwrap(),
                "{index} of {n}"
            );
            let asked = inclusion_subtrees(index, n);
            assert!(asked
                .iter()
                .all(|&(start, level)| start % (1 << level) == 0));
            if let Some(&missing) = asked.last() {
                let mut lacking = lacking(&nodes, missing);
                assert_eq!(inclusion_proof_with(index, n, &mut lacking), None);
            }
        }
    }
    assert_eq!(inclusion_proof_with(5, 5, &mut |_, _| Some([0; 32])), None);
}

/// `leaves` leaf hashes, and by `(start, level)` every leaf (level 0) and the root of
/// every perfect subtree `CompactRange` reports as it appends them, each checked
/// against the leaves.
fn completed_subtrees(leaves: u32) -> (Vec<Hash>, HashMap<(u64, u32), Hash>) {
    let leaves: Vec<Hash> = (0..leaves).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let mut range = CompactRange::new();
    let mut nodes = HashMap::new();
    for (index, leaf) in leaves.iter().enumerate() {
        nodes.insert((index as u64, 0), *leaf);
        range.append_with(*leaf, |level, index, node| {
            let start = (index << level) as usize;
            assert_eq!(*node, root(&leaves[start..start + (1 << level)]));
            assert!(nodes.insert((index << level, level), *node).is_none());
        });
    }
    (leaves, nodes)
}

/// The subtrees in `nodes` except `missing`.
fn lacking(
    nodes: &HashMap<(u64, u32), Hash>,
    missing: (u64, u32),
) -> impl FnMut(u64, u32) -> Option<Hash> + '_ {
    move |start, level| {
        ((start, level) != missing)
            .then(|| nodes.get(&(start, level)).copied())
            .flatten()
    }
}

/// Consistency proofs and tree heads from completed subtrees equal those from all
/// leaves, for every pair of sizes up to 40; a subtree they lack makes them `None`.
#[test]
fn consistency_proofs_from_completed_subtrees_equal_proofs_from_all_leaves() {
    let (leaves, nodes) = completed_subtrees(40);
    let known = |start: u64, level: u32| nodes.get(&(start, level)).copied();
    for new in 0..=leaves.len() as u64 {
        let head = root_with(new, &mut { known }).unwrap();
        assert_eq!(head, root(&leaves[..new as usize]), "head of {new}");
        let asked = root_subtrees(new);
        assert_eq!(asked.len(), new.count_ones() as usize, "head of {new}");
        if let Some(&missing) = asked.first() {
            assert_eq!(root_with(new, &mut lacking(&nodes, missing)), None);
        }
        for old in 0..=new {
            let proof = consistency_proof_with(old, new, &mut { known }).unwrap();
            assert_eq!(
                proof,
                consistency_proof(&leaves, old, new).unwrap(),
                "{old} → {new}"
            );
            let asked = consistency_subtrees(old, new);
            assert!(asked
                .iter()
                .all(|&(start, level)| start % (1 << level) == 0));
            if let Some(&missing) = asked.last() {
                assert_eq!(
                    consistency_proof_with(old, new, &mut lacking(&nodes, missing)),
                    None
                );
            }
        }
        assert_eq!(consistency_proof_with(new + 1, new, &mut { known }), None);
    }
}

#[test]
fn compact_range_resumes_from_parts() {
    let leaves: Vec<Hash> = (0u32..13).map(|i| leaf_hash(&i.to_le_bytes())).collect();
    let mut range = CompactRange::new();
    leaves[..11].iter().for_each(|leaf| range.append(*leaf));
    assert_eq!(range.peaks().len(), 3); // 11 = 8 + 2 + 1
    let mut resumed = CompactRange::from_parts(range.size(), range.peaks().to_vec()).unwrap();
    leaves[11..].iter().for_each(|leaf| resumed.append(*leaf));
    assert_eq!(resumed.root(), root(&leaves));
    assert!(CompactRange::from_parts(11, range.peaks()[..2].to_vec()).is_err());
}

#[test]
fn chain_hash_commits_to_previous_link_and_entry() {
    let genesis = [0u8; 32];
    let first = chain_hash(genesis, b"entry 1");
    let second = chain_hash(first, b"entry 2");
    assert_eq!(first, chain_hash(genesis, b"entry 1"));
    assert_ne!(first, chain_hash(genesis, b"entry 2"));
    assert_ne!(second, chain_hash(genesis, b"entry 2"));
    assert_ne!(
        second,
        chain_hash(chain_hash(genesis, b"entry 1!"), b"entry 2")
    );
    // Domain-separated from the Merkle leaf hash of the same bytes.
    assert_ne!(first, leaf_hash(&[&genesis[..], b"entry 1"].concat()));
    assert_eq!(
        hex::encode(first),
        hex::encode(sha256(
            &[b"charter/audit-chain/v1\0", &genesis[..], b"entry 1"].concat()
        ))
    );
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
