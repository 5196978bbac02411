//! Calls to containerd's leases service. A lease keeps the content it lists alive through
//! containerd's garbage collector, until the lease is deleted or its `gc.expire` label passes.

use std::collections::HashMap;

use containerd_client::services::v1::{
    AddResourceRequest, CreateRequest, DeleteRequest, DeleteResourceRequest, Lease, ListRequest, ListResourcesRequest,
    Resource,
};

use super::client::{created, optional, quote_filter_value, unary, Client, Created};
use crate::error::Result;

/// Resource type of content in a lease.
const CONTENT_RESOURCE: &str = "content";

fn content_resource(digest: &str) -> Resource {
    Resource { id: digest.to_owned(), r#type: CONTENT_RESOURCE.to_owned() }
}

impl Client {
    pub async fn create_lease(&self, id: &str, labels: HashMap<String, String>) -> Result<Created> {
        let request = self.request(CreateRequest { id: id.to_owned(), labels });
        created(unary("leases.Create", self.leases().create(request).await))
    }

    /// Deletes a lease; `None` when it does not exist. With `sync`, containerd runs its garbage
    /// collector before it returns.
    pub async fn delete_lease(&self, id: &str, sync: bool) -> Result<Option<()>> {
        let request = self.request(DeleteRequest { id: id.to_owned(), sync });
        Ok(optional(unary("leases.Delete", self.leases().delete(request).await))?.map(|_| ()))
    }

    /// Returns the lease with this id, or `None`. containerd has no call to get one lease, so
    /// this lists with an id filter, which containerd evaluates over every lease of the
    /// namespace.
    pub async fn find_lease(&self, id: &str) -> Result<Option<Lease>> {
        let filter = format!("id=={}", quote_filter_value(id));
        let leases = self.list_leases(filter).await?;
        Ok(leases.into_iter().find(|lease| lease.id == id))
    }

    /// Lists the leases that match `filter`, selectors joined by commas that must all match.
    pub async fn list_leases(&self, filter: String) -> Result<Vec<Lease>> {
        let request = self.request(ListRequest { filters: vec![filter] });
        Ok(unary("leases.List", self.leases().list(request).await)?.leases)
    }

    /// Adds content to a lease; `None` when the lease does not exist. The content need not
    /// exist yet.
    pub async fn add_lease_content(&self, lease: &str, digest: &str) -> Result<Option<()>> {
        let request =
            self.request(AddResourceRequest { id: lease.to_owned(), resource: Some(content_resource(digest)) });
        Ok(optional(unary("leases.AddResource", self.leases().add_resource(request).await))?.map(|_| ()))
    }

    /// Removes content from a lease; `None` when the lease does not exist. Removing content the
    /// lease does not list succeeds.
    pub async fn remove_lease_content(&self, lease: &str, digest: &str) -> Result<Option<()>> {
        let request =
            self.request(DeleteResourceRequest { id: lease.to_owned(), resource: Some(content_resource(digest)) });
        Ok(optional(unary("leases.DeleteResource", self.leases().delete_resource(request).await))?.map(|_| ()))
    }

    /// Returns the digests of the content a lease lists, or `None` when the lease does not exist.
    pub async fn lease_content(&self, lease: &str) -> Result<Option<Vec<String>>> {
        let request = self.request(ListResourcesRequest { id: lease.to_owned() });
        let response = optional(unary("leases.ListResources", self.leases().list_resources(request).await))?;
        Ok(response.map(|response| {
            response
                .resources
                .into_iter()
                .filter(|resource| resource.r#type == CONTENT_RESOURCE)
                .map(|resource| resource.id)
                .collect()
        }))
    }
}
