package io.tuneline.serving.api;

import com.fasterxml.jackson.core.JsonProcessingException;
import jakarta.ws.rs.WebApplicationException;
import jakarta.ws.rs.core.Response;
import jakarta.ws.rs.core.UriInfo;
import org.jboss.logging.Logger;
import org.jboss.resteasy.reactive.server.ServerExceptionMapper;

/** Every error of the API as an RFC 9457 problem, never a bare 500 or a stack trace. */
public class ProblemMappers {
    private static final Logger LOG = Logger.getLogger(ProblemMappers.class);

    @ServerExceptionMapper
    public Response serving(ServingException e, UriInfo uri) {
        Response problem = Problem.response(e.status(), e.title(), e.getMessage(), uri.getPath());
        if (e.retryAfterSeconds() > 0) {
            problem.getHeaders().putSingle("Retry-After", Integer.toString(e.retryAfterSeconds()));
        }
        return problem;
    }

    @ServerExceptionMapper
    public Response json(JsonProcessingException e, UriInfo uri) {
        return Problem.response(
                400,
                "Malformed JSON",
                "the request body is not the JSON this endpoint takes: " + e.getOriginalMessage(),
                uri.getPath());
    }

    @ServerExceptionMapper
    public Response web(WebApplicationException e, UriInfo uri) {
        int status = e.getResponse().getStatus();
        if (e.getCause() instanceof JsonProcessingException j) {
            return json(j, uri);
        }
        return Problem.response(
                status,
                e.getResponse().getStatusInfo().getReasonPhrase(),
                e.getMessage(),
                uri.getPath());
    }

    @ServerExceptionMapper
    public Response unexpected(RuntimeException e, UriInfo uri) {
        LOG.errorf(e, "request %s failed", uri.getPath());
        return Problem.response(
                500,
                "Internal error",
                "the serving service could not complete the request; its log has the cause",
                uri.getPath());
    }
}
