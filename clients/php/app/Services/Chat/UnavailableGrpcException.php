<?php

declare(strict_types=1);

namespace App\Services\Chat;

final class UnavailableGrpcException extends GrpcException
{
}
