//! The OpenAPI 3.1 document, generated from the handlers' annotations, and Swagger UI at `/docs`.

use axum::Router;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::AppState;
use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Quire",
        description = "An event-sourced backend for book platforms. Writes answer with `ETag` (the entity version) and `Consistency-Token` (the log position); send the token back on a read to see your own write. `POST` honours `Idempotency-Key`; `PUT`/`DELETE` honour `If-Match`. Errors are RFC 9457 problem details.",
        license(name = "Apache-2.0")
    ),
    paths(
        routes::status::status,
        routes::search::search,
        routes::search::suggest,
        routes::books::create,
        routes::books::list,
        routes::books::get,
        routes::books::update,
        routes::books::delete,
        routes::books::history,
        routes::texts::put,
        routes::texts::get,
        routes::texts::delete,
        routes::reviews::create,
        routes::reviews::list,
        routes::reviews::summary,
        routes::reviews::get,
        routes::reviews::update,
        routes::reviews::delete,
        routes::users::create,
        routes::users::list,
        routes::users::me,
        routes::users::get,
        routes::users::change_password,
        routes::users::change_preferences,
        routes::users::deactivate,
        routes::users::revoke_sessions,
        routes::auth::token,
        routes::summaries::generate,
        routes::recommendations::create,
        routes::recommendations::list,
        routes::lending::borrow,
        routes::lending::return_book,
        routes::lending::copies,
        routes::lending::add_copy,
        routes::lending::withdraw_copy,
        routes::lending::mark_lost,
        routes::lending::availability,
        routes::lending::loans,
        routes::lending::get_loan,
        routes::lending::renew,
        routes::lending::return_loan,
        routes::lending::user_loans,
        routes::lending::place_hold,
        routes::lending::holds,
        routes::lending::get_hold,
        routes::lending::cancel_hold,
        routes::store::get_stock,
        routes::store::set_price,
        routes::store::set_stock,
        routes::store::restock,
        routes::store::place_order,
        routes::store::get_order,
        routes::store::cancel_order,
        routes::store::user_orders,
        routes::store::bestsellers,
        routes::club::vote,
        routes::club::vote_status,
        routes::club::discussions,
        routes::club::create_discussion,
        routes::club::reply_to_discussion,
        routes::club::create_club,
        routes::club::list_clubs,
        routes::club::get_club,
        routes::club::list_members,
        routes::club::join,
        routes::club::leave,
        routes::club::list_rounds,
        routes::club::open_round,
        routes::club::current_round,
        routes::club::nominate,
        routes::club::cast_ballot,
        routes::club::close_round,
        routes::club::list_threads,
        routes::club::create_thread,
        routes::club::get_thread,
        routes::club::list_replies,
        routes::club::create_reply,
        routes::club::edit_reply,
        routes::club::delete_reply,
        routes::club::add_moderator,
        routes::club::remove_moderator,
        routes::club::edit_thread,
        routes::club::remove_thread,
        crate::live::websocket,
        crate::live::events,
        crate::live::feed_websocket,
        crate::live::feed_events,
        routes::social::follow,
        routes::social::unfollow,
        routes::social::follow_post,
        routes::social::unfollow_post,
        routes::social::followers,
        routes::social::following,
        routes::social::set_privacy,
        routes::social::get_privacy,
        routes::social::feed,
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError, crate::dto::Accepted)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "books", description = "The catalogue"),
        (name = "search", description = "Catalogue search: typo-tolerant, faceted, as-you-type"),
        (name = "reviews", description = "Reviews, ratings and their aggregates"),
        (name = "users", description = "Accounts"),
        (name = "auth", description = "Bearer tokens"),
        (name = "summaries", description = "Generated summaries (extractive, or a local Llama-family model)"),
        (name = "recommendations", description = "Interactions and recommendations (collaborative filtering, cold start by genre and rating)"),
        (name = "lending", description = "Circulation: copies, loans (borrow, return, renew), holds and availability"),
        (name = "store", description = "Bookstore: prices and stock, orders (reserved from stock, priced from the catalogue), bestsellers over rolling windows"),
        (name = "clubs", description = "Book clubs: live updates over WebSocket and Server-Sent Events"),
        (name = "club", description = "Book club: clubs, members, voting rounds (plurality or ranked choice) and discussions; the seed paths act on the default club"),
        (name = "social", description = "Following members, activity privacy and the feed of the people one follows"),
        (name = "operations", description = "Health"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `/openapi.json` and the Swagger UI at `/docs` (its assets are compiled in: no CDN).
pub(crate) fn routes() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", openapi()))
}
