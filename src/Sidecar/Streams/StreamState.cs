using Sidecar.Sse;

namespace Sidecar.Streams;

/// <summary>What the sidecar knows about one stream from the parts it has seen.</summary>
internal sealed class StreamState
{
    public StreamState(string? messageId) => MessageId = messageId;

    /// <summary>The assistant message id: the <c>x-message-id</c> header, else the <c>start</c> part's.</summary>
    public string? MessageId { get; private set; }

    /// <summary>The <c>messageId</c> of the <c>start</c> part, when it differs from the header's.</summary>
    public string? ConflictingStartMessageId { get; private set; }

    public bool StartSeen { get; private set; }

    public bool FinishSeen { get; private set; }

    public bool DoneSeen { get; private set; }

    /// <summary>Whether the upstream sent an <c>error</c> part (only the first one counts on the client).</summary>
    public bool ErrorSeen { get; private set; }

    /// <summary>Whether an <c>error</c> part came before <c>finish</c> (some providers send finish after their error).</summary>
    public bool ErrorSeenBeforeFinish => ErrorSeen && !_errorAfterFinish;

    /// <summary>
    /// Whether an error part of the upstream's failed the answer: any but the service's resume
    /// error after <c>finish</c>, which leaves the answer whole.
    /// </summary>
    public bool FailedByErrorPart { get; private set; }

    /// <summary>Whether an <c>abort</c> part was seen (the answer was stopped: it ends without finish by design).</summary>
    public bool AbortSeen { get; private set; }

    private bool _errorAfterFinish;

    /// <summary>An artifact was cleared (<c>data-clear</c>) and not yet finished (<c>data-finish</c>).</summary>
    public bool ArtifactOpen { get; private set; }

    public long Events { get; private set; }

    public long Bytes { get; private set; }

    public long InvalidParts { get; private set; }

    public void Observe(SseEvent evt)
    {
        Events++;
        Bytes += evt.Raw.Length;
        switch (evt.Part.Type)
        {
            case UiPartType.Start:
                StartSeen = true;
                if (MessageId is null)
                {
                    MessageId = evt.Part.MessageId;
                }
                else if (evt.Part.MessageId is not null && evt.Part.MessageId != MessageId)
                {
                    ConflictingStartMessageId = evt.Part.MessageId;
                }

                break;
            case UiPartType.Finish:
                FinishSeen = true;
                break;
            case UiPartType.Done:
                DoneSeen = true;
                break;
            case UiPartType.Abort:
                AbortSeen = true;
                break;
            case UiPartType.Error:
                _errorAfterFinish = !ErrorSeen && FinishSeen;
                ErrorSeen = true;
                if (!FinishSeen || !UiPart.IsResumeError(evt.Data))
                {
                    FailedByErrorPart = true;
                }

                break;
            case UiPartType.DataClear:
                ArtifactOpen = true;
                break;
            case UiPartType.DataFinish:
                ArtifactOpen = false;
                break;
            case UiPartType.Invalid:
                InvalidParts++;
                break;
        }
    }
}
