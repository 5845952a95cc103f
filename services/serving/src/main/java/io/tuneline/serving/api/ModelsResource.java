package io.tuneline.serving.api;

import io.tuneline.serving.load.LoadedModel;
import io.tuneline.serving.load.LoadedModels;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import java.util.List;

/** {@code GET /v1/models}: what is loaded, in OpenAI's list shape so its clients read it. */
@Path("/v1/models")
public class ModelsResource {
    private final LoadedModels models;

    public ModelsResource(LoadedModels models) {
        this.models = models;
    }

    /** One loaded version; {@code id} is what requests name it by. */
    public record ModelEntry(
            String id,
            String object,
            long created,
            String owned_by,
            String model,
            long version,
            String task,
            String base_model,
            String method) {}

    public record ModelList(String object, List<ModelEntry> data) {}

    @GET
    @Produces(MediaType.APPLICATION_JSON)
    public ModelList list() {
        return new ModelList(
                "list",
                models.loaded().stream()
                        .map(
                                (LoadedModel m) ->
                                        new ModelEntry(
                                                m.version().id(),
                                                "model",
                                                0,
                                                "tuneline",
                                                m.version().model(),
                                                m.version().version(),
                                                m.task(),
                                                m.version().baseModel(),
                                                m.version().method()))
                        .toList());
    }
}
