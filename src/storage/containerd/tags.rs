//! Tags: image records named `<root>//<repository>:<tag>`, labelled with root and repository,
//! whose target is the tagged manifest. They show up in `ctr -n <namespace> images ls`.

use containerd_client::services::v1::Image;
use containerd_client::types::Descriptor as ContainerdDescriptor;

use super::client::label_filter;
use super::repositories::labels_match;
use super::Inner;
use crate::error::{ClientError, Result};
use crate::mapping::{LABEL_REPOSITORY, LABEL_ROOT};
use crate::names::{RepositoryName, Tag};

impl Inner {
    /// Returns the descriptor a tag points at, or `None` when the tag does not exist.
    pub(super) async fn tag_target(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<ContainerdDescriptor>> {
        let Some(image) = self.client.get_image(&self.mapping.image_name(repository, tag)).await? else {
            return Ok(None);
        };
        // The name already encodes root and repository; the labels must agree with it.
        if !labels_match(&image.labels, &self.mapping, repository) {
            return Ok(None);
        }
        Ok(image.target)
    }

    /// Lists the image records of this root that record tags of `repository`.
    pub(super) async fn repository_images(&self, repository: &RepositoryName) -> Result<Vec<Image>> {
        let filter = format!(
            "{},{}",
            label_filter(LABEL_ROOT, self.mapping.root()),
            label_filter(LABEL_REPOSITORY, repository.as_str())
        );
        let images = self.client.list_images(filter).await?;
        Ok(images
            .into_iter()
            .filter(|image| self.mapping.parse_image_name(&image.name).is_some_and(|(name, _)| name == *repository))
            .collect())
    }

    pub(super) async fn delete_tag(&self, repository: &RepositoryName, tag: &Tag) -> Result<()> {
        match self.client.delete_image(&self.mapping.image_name(repository, tag)).await? {
            Some(()) => Ok(()),
            None => {
                Err(ClientError::ManifestUnknown { repository: repository.to_string(), reference: tag.to_string() }
                    .into())
            }
        }
    }

    pub(super) async fn list_tags(&self, repository: &RepositoryName) -> Result<Vec<Tag>> {
        if !self.links(repository).await?.exists() {
            return Err(ClientError::NameUnknown(repository.to_string()).into());
        }

        let mut tags: Vec<Tag> = self
            .repository_images(repository)
            .await?
            .iter()
            .filter_map(|image| self.mapping.parse_image_name(&image.name).map(|(_, tag)| tag))
            .collect();
        tags.sort();
        tags.dedup();
        Ok(tags)
    }
}
