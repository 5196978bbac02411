//! Calls to containerd's images service, which stores the registry's tags as image records.

use containerd_client::services::v1::{
    CreateImageRequest, DeleteImageRequest, GetImageRequest, Image, ListImagesRequest, UpdateImageRequest,
};

use super::client::{created, optional, unary, Client, Created};
use crate::error::Result;

impl Client {
    /// Returns the image record with this name, or `None`.
    pub async fn get_image(&self, name: &str) -> Result<Option<Image>> {
        let request = self.request(GetImageRequest { name: name.to_owned() });
        let response = optional(unary("images.Get", self.images().get(request).await))?;
        Ok(response.and_then(|response| response.image))
    }

    /// Creates an image record, or replaces the labels and target of the one with its name.
    pub async fn put_image(&self, image: Image) -> Result<()> {
        let request = self.request(CreateImageRequest { image: Some(image.clone()), source_date_epoch: None });
        if created(unary("images.Create", self.images().create(request).await))? == Created::New {
            return Ok(());
        }

        // Without an update mask containerd replaces every mutable field of the record.
        let request =
            self.request(UpdateImageRequest { image: Some(image), update_mask: None, source_date_epoch: None });
        unary("images.Update", self.images().update(request).await)?;
        Ok(())
    }

    /// Deletes an image record; `None` when it does not exist.
    pub async fn delete_image(&self, name: &str) -> Result<Option<()>> {
        let request = self.request(DeleteImageRequest { name: name.to_owned(), sync: false, target: None });
        Ok(optional(unary("images.Delete", self.images().delete(request).await))?.map(|_| ()))
    }

    /// Lists the image records that match `filter`, selectors joined by commas that must all
    /// match.
    pub async fn list_images(&self, filter: String) -> Result<Vec<Image>> {
        let request = self.request(ListImagesRequest { filters: vec![filter] });
        Ok(unary("images.List", self.images().list(request).await)?.images)
    }
}
