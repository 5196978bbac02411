//! Fuzzes the mapping from registry objects to containerd identifiers.
//!
//! The input is two (root, repository, tag, upload id, digest) tuples and a content directory.
//! For every tuple whose parts validate, it checks that lease ids are containerd identifiers,
//! that image names split back into their parts, that labels fit containerd's size limit and that
//! blob paths stay under `<content dir>/blobs/`. For two valid tuples it checks that different
//! (root, repository) pairs never share a lease id or an image name.

#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use arbitrary::Arbitrary;
use containerd_registry::digest::Digest;
use containerd_registry::fastpath::blob_path;
use containerd_registry::mapping::{
    is_containerd_identifier, Mapping, UploadId, CONTAINERD_MAX_ID_LEN, CONTAINERD_MAX_LABEL_LEN, LABEL_REPOSITORY,
    LABEL_ROOT, LABEL_UPLOAD,
};
use containerd_registry::names::{RepositoryName, Tag};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Object<'a> {
    root: &'a str,
    repository: &'a str,
    tag: &'a str,
    upload: &'a str,
    digest: &'a str,
}

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    first: Object<'a>,
    second: Object<'a>,
    content_dir: &'a [u8],
}

/// The parts of an [`Object`] that validate.
struct Parsed {
    mapping: Mapping,
    repository: RepositoryName,
    tag: Option<Tag>,
    upload: Option<UploadId>,
}

fn parse(object: &Object) -> Option<Parsed> {
    let mapping = Mapping::new(object.root).ok()?;
    let repository = RepositoryName::parse(object.repository).ok()?;
    let tag = Tag::parse(object.tag).ok();
    let upload = UploadId::parse(object.upload);
    Some(Parsed { mapping, repository, tag, upload })
}

fn assert_label_fits(key: &str, value: &str) {
    assert!(
        key.len() + value.len() <= CONTAINERD_MAX_LABEL_LEN,
        "label {key} with a value of {} bytes exceeds containerd's limit",
        value.len()
    );
}

/// Checks the identifiers, names and labels of one valid object.
fn check_one(parsed: &Parsed) {
    let Parsed { mapping, repository, tag, upload } = parsed;

    let lease = mapping.repository_lease(repository);
    assert!(is_containerd_identifier(&lease), "{lease:?}");
    assert!(lease.len() <= CONTAINERD_MAX_ID_LEN);

    assert_label_fits(LABEL_ROOT, mapping.root());
    assert_label_fits(LABEL_REPOSITORY, repository.as_str());
    assert_eq!(Mapping::new(mapping.root()).as_ref(), Ok(mapping), "root() must validate as the same root");

    if let Some(tag) = tag {
        let name = mapping.image_name(repository, tag);
        assert_eq!(mapping.parse_image_name(&name), Some((repository.clone(), tag.clone())), "{name:?}");
    }

    if let Some(upload) = upload {
        let lease = mapping.upload_lease(upload);
        assert!(is_containerd_identifier(&lease), "{lease:?}");
        assert_label_fits(LABEL_UPLOAD, upload.as_str());
        assert!(mapping.ingest_ref(upload).ends_with(upload.as_str()));
    }
}

/// Checks that two valid objects share identifiers exactly when their root and repository match.
fn check_pair(first: &Parsed, second: &Parsed) {
    let same_owner = first.mapping == second.mapping && first.repository == second.repository;

    let first_lease = first.mapping.repository_lease(&first.repository);
    let second_lease = second.mapping.repository_lease(&second.repository);
    assert_eq!(first_lease == second_lease, same_owner, "{first_lease} vs {second_lease}");

    if let (Some(first_tag), Some(second_tag)) = (&first.tag, &second.tag) {
        let first_name = first.mapping.image_name(&first.repository, first_tag);
        let second_name = second.mapping.image_name(&second.repository, second_tag);
        let same_image = same_owner && first_tag == second_tag;
        assert_eq!(first_name == second_name, same_image, "{first_name:?} vs {second_name:?}");

        // A mapping reads back only the image names of its own root.
        let parsed = second.mapping.parse_image_name(&first_name);
        if first.mapping == second.mapping {
            assert_eq!(parsed, Some((first.repository.clone(), first_tag.clone())));
        } else {
            assert_eq!(parsed, None, "{first_name:?} read back under root {:?}", second.mapping.root());
        }
    }

    if let (Some(first_upload), Some(second_upload)) = (&first.upload, &second.upload) {
        let same_lease = first.mapping.upload_lease(first_upload) == second.mapping.upload_lease(second_upload);
        assert_eq!(same_lease, first_upload == second_upload);
        let same_ref = first.mapping.ingest_ref(first_upload) == second.mapping.ingest_ref(second_upload);
        assert_eq!(same_ref, first.mapping == second.mapping && first_upload == second_upload);
    }
}

/// Checks that the blob path of a valid digest is `<content_dir>/blobs/<algorithm>/<hex>`.
fn check_blob_path(content_dir: &Path, digest: &Digest) {
    let path = blob_path(content_dir, digest);
    let blobs = content_dir.join("blobs");

    assert!(path.starts_with(&blobs), "{path:?} is outside {blobs:?}");
    assert_eq!(path.components().count(), blobs.components().count() + 2, "{path:?}");

    let tail: Vec<Component> = path.components().rev().take(2).collect();
    assert_eq!(tail[0], Component::Normal(OsStr::new(digest.hex())));
    assert_eq!(tail[1], Component::Normal(OsStr::new(digest.algorithm().name())));
}

fuzz_target!(|input: Input| {
    let first = parse(&input.first);
    let second = parse(&input.second);

    if let Some(first) = &first {
        check_one(first);
    }
    if let Some(second) = &second {
        check_one(second);
    }
    if let (Some(first), Some(second)) = (&first, &second) {
        check_pair(first, second);
    }

    let content_dir = Path::new(OsStr::from_bytes(input.content_dir));
    for object in [&input.first, &input.second] {
        if let Ok(digest) = object.digest.parse::<Digest>() {
            check_blob_path(content_dir, &digest);
        }
    }
});
