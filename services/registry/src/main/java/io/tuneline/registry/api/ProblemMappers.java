package io.tuneline.registry.api;

import com.fasterxml.jackson.core.JsonProcessingException;
import io.tuneline.common.job.InvalidJobException;
import io.tuneline.registry.error.RegistryException;
import io.tuneline.registry.planning.JobDoesNotFitException;
import jakarta.validation.ConstraintViolationException;
import jakarta.ws.rs.WebApplicationException;
import jakarta.ws.rs.core.Response;
import jakarta.ws.rs.core.UriInfo;
import java.util.List;
import org.jboss.logging.Logger;
import org.jboss.resteasy.reactive.server.ServerExceptionMapper;

/** Every error of the API as an RFC 9457 problem, never a stack trace. */
public class ProblemMappers {
    private static final Logger LOG = Logger.getLogger(ProblemMappers.class);

    @ServerExceptionMapper
    public Response registry(RegistryException e, UriInfo uri) {
        return Problem.response(e.status(), e.title(), e.getMessage(), uri.getPath());
    }

    @ServerExceptionMapper
    public Response doesNotFit(JobDoesNotFitException e, UriInfo uri) {
        return Problem.response(
                422,
                "Job does not fit the device",
                e.getMessage(),
                uri.getPath(),
                e.waysOut(),
                e.estimate());
    }

    @ServerExceptionMapper
    public Response invalidJob(InvalidJobException e, UriInfo uri) {
        return Problem.response(400, "Invalid job", e.getMessage(), uri.getPath(), e.problems());
    }

    @ServerExceptionMapper
    public Response validation(ConstraintViolationException e, UriInfo uri) {
        List<String> errors =
                e.getConstraintViolations().stream()
                        .map(v -> leaf(v.getPropertyPath().toString()) + ": " + v.getMessage())
                        .sorted()
                        .toList();
        return Problem.response(
                400, "Invalid request", String.join("; ", errors), uri.getPath(), errors);
    }

    @ServerExceptionMapper
    public Response json(JsonProcessingException e, UriInfo uri) {
        return Problem.response(400, "Malformed JSON", e.getOriginalMessage(), uri.getPath());
    }

    @ServerExceptionMapper
    public Response web(WebApplicationException e, UriInfo uri) {
        int status = e.getResponse().getStatus();
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
                "the registry could not complete the request; its log has the cause",
                uri.getPath());
    }

    /** {@code setStage.arg2.stage} -> {@code stage}: the field a user wrote. */
    private static String leaf(String path) {
        return path.substring(path.lastIndexOf('.') + 1);
    }
}
