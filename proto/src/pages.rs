//! Reading a paginated listing to its end. ListEndpoints answers a page per call (the
//! server caps pages so no single call pulls a whole cluster); callers that need every
//! match loop with the page token, and this is that loop, once.

use std::future::Future;

use tonic::Status;

use crate::pb;

/// Most pages one listing may take: a server that kept handing out tokens (a bug, or
/// endpoints added faster than they are read) must not keep a client looping forever.
pub const MAX_PAGES: usize = 10_000;

/// Every endpoint of a ListEndpoints listing: `call(token)` sends the request with that
/// page token (empty for the first page).
pub async fn all_endpoints<F, Fut>(mut call: F) -> Result<Vec<pb::Endpoint>, Status>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<pb::ListEndpointsResponse, Status>>,
{
    let mut all = Vec::new();
    let mut token = String::new();
    for _ in 0..MAX_PAGES {
        let page = call(token).await?;
        all.extend(page.endpoints);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        token = page.next_page_token;
    }
    Err(Status::aborted(format!(
        "the endpoint listing did not end after {MAX_PAGES} pages; retry"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(id: &str) -> pb::Endpoint {
        pb::Endpoint {
            id: id.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn follows_tokens_to_the_last_page() {
        let pages = |token: String| async move {
            Ok(match token.as_str() {
                "" => pb::ListEndpointsResponse {
                    endpoints: vec![endpoint("a"), endpoint("b")],
                    next_page_token: "b".into(),
                },
                "b" => pb::ListEndpointsResponse {
                    endpoints: vec![endpoint("c")],
                    next_page_token: String::new(),
                },
                other => return Err(Status::invalid_argument(other.to_string())),
            })
        };
        let ids: Vec<String> = all_endpoints(pages)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_listing_that_never_ends_is_aborted() {
        let endless = |_token: String| async {
            Ok(pb::ListEndpointsResponse {
                endpoints: vec![],
                next_page_token: "again".into(),
            })
        };
        let e = all_endpoints(endless).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Aborted);
    }
}
